"""Things the zoo tests write themselves: untrained checkpoints and a MONAI bundle in the model zoo's layout
(shaped like spleen_ct_segmentation)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LABELS = {0: "background", 1: "organ"}


def write_checkpoint(path: Path, *, cascade: bool = False, seed: int = 0, plan=None, postprocess=None) -> Path:
    """An untrained cpu-lean checkpoint (seeded weights) with a 2 mm z-score plan; a cascade adds a locator;
    ``postprocess``: the :class:`~napari_volseg.postprocess.PostProcess` it records."""
    from napari_volseg.config import preset_from_dict
    from napari_volseg.engine import checkpoint as ckpt
    from napari_volseg.models import build_model, model_config
    from napari_volseg.planning import Plan

    torch.manual_seed(seed)
    net = build_model(model_config("cpu-lean", 1, 2))
    plan = plan or Plan(target_spacing=(2.0, 2.0, 2.0))
    preset = preset_from_dict({"name": "test", "train": {"patch_size": [16, 32, 32]}, "infer": {"overlap": 0.25}})
    locator = None
    if cascade:
        coarse = build_model(model_config("cpu-lean", 1, 2))
        state = {k: v.clone() for k, v in coarse.state_dict().items()}
        locator = ckpt.Locator(coarse.config, Plan(target_spacing=(4.0, 4.0, 4.0)), state, (16, 16, 16), 10.0)
    return ckpt.save(path, net, plan, LABELS, preset=preset, task="Test", locator=locator, postprocess=postprocess)


NETWORK = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2],
    "num_res_units": 2,
    "norm": "batch",
}


def inference_config(image: str, output_dir: str) -> dict:
    """The spleen bundle's inference.json shape: RAS, 1.5 mm, HU -57..164 -> 0..1, sliding window, invert."""
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "output_dir": output_dir,
        "datalist": [image],
        "device": "$torch.device('cpu')",
        "network_def": NETWORK,
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
                {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 1.5], "mode": "bilinear"},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": "image",
                    "a_min": -57,
                    "a_max": 164,
                    "b_min": 0,
                    "b_max": 1,
                    "clip": True,
                },
                {"_target_": "EnsureTyped", "keys": "image"},
            ],
        },
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32], "sw_batch_size": 4, "overlap": 0.5},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": "image",
                    "nearest_interp": False,
                    "to_tensor": True,
                },
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "seg",
                    "separate_folder": False,
                    "output_dtype": "$numpy.uint8",
                },
            ],
        },
    }


METADATA = {
    "version": "0.1.0",
    "task": "Decathlon spleen segmentation (test bundle)",
    "description": "A spleen-shaped test bundle with random weights",
    "authors": "napari-volseg tests",
    "data_source": "none: random weights",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1}},
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "channel_def": {"0": "background", "1": "spleen"},
            }
        },
    },
}


def write_bundle(folder: Path, image: str = "", output_dir: str = "eval", seed: int = 0) -> Path:
    """Write ``folder`` (configs/, models/model.pt with a seeded random UNet); returns it."""
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    net = UNet(**{k: v for k, v in NETWORK.items() if k != "_target_"})
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "configs" / "inference.json").write_text(json.dumps(inference_config(image, output_dir), indent=2))
    (folder / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=2))
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder
