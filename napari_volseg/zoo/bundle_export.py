"""Export a (single-network) checkpoint as a MONAI bundle: configs/metadata.json, configs/inference.json,
models/model.pt (a plain state dict), docs/README.md.

The preprocessing plan is written as MONAI transforms: orientation to napari-volseg's axis order
(``Orientationd`` axcodes ``SPL``: array axes z superior, y posterior, x left), crop to the body
(``CropForegroundd``), resampling to the plan's spacing (``Spacingd``) or shape (``Resized``), and
the plan's normalisation (``NormalizeIntensityd``, or for CT one ``ScaleIntensityRanged`` that clips
and z-scores with the plan's statistics). Sliding window with Gaussian blending, softmax, inverted
back to the input grid, argmax, then the checkpoint's post-processing as MONAI's
``KeepLargestConnectedComponentd`` (26-connected) for the classes it names. ``Spacingd`` resamples through the affine where napari-volseg
resizes the cropped array, so the two agree closely but not voxel for voxel. The network is
napari-volseg's ``UNet3D``: running the bundle needs napari-volseg installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import monai
import numpy as np
import torch

from napari_volseg import __version__
from napari_volseg import postprocess as post
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.zoo.card import read_card


def _preprocessing(plan) -> list[dict]:
    steps: list[dict] = [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "SPL"},
    ]
    if plan.crop:
        select = "$lambda x: x > -500" if plan.normalization == "ct" else "$lambda x: x > x.min()"
        steps.append({"_target_": "CropForegroundd", "keys": "image", "source_key": "image", "select_fn": select})
    if plan.resample == "spacing":
        steps.append({"_target_": "Spacingd", "keys": "image", "pixdim": list(plan.target_spacing), "mode": "bilinear"})
    else:
        steps.append(
            {"_target_": "Resized", "keys": "image", "spatial_size": list(plan.target_shape), "mode": "trilinear"}
        )
    if plan.normalization == "ct":
        lo, hi = plan.ct_clip or (-1024.0, 3071.0)
        std = max(plan.ct_std, 1e-6)
        scale = {"a_min": lo, "a_max": hi, "b_min": (lo - plan.ct_mean) / std, "b_max": (hi - plan.ct_mean) / std}
        steps.append({"_target_": "ScaleIntensityRanged", "keys": "image", "clip": True, **scale})
    else:
        steps.append({"_target_": "NormalizeIntensityd", "keys": "image", "channel_wise": True})
    steps.append({"_target_": "EnsureTyped", "keys": "image"})
    return steps


def _largest_component(decision: post.PostProcess) -> list[dict]:
    """MONAI's step for napari-volseg's post-processing (argmax labels in, 26-connected in 3D)."""
    if not decision.largest_component:
        return []
    return [
        {
            "_target_": "KeepLargestConnectedComponentd",
            "keys": "pred",
            "applied_labels": list(decision.largest_component),
            "is_onehot": False,
            "independent": True,
            "connectivity": 3,
        }
    ]


def inference_config(checkpoint: ckpt.Checkpoint) -> dict:
    preset = checkpoint.preset
    divisor = checkpoint.model_config.divisor
    roi = [max(divisor, int(p) // divisor * divisor) for p in preset.train.patch_size]
    return {
        "imports": ["$import glob", "$import os", "$import napari_volseg"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "$@bundle_root + '/data'",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/*.nii*')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": {
            "_target_": "napari_volseg.models.unet3d.UNet3D",
            "config": {"_target_": "napari_volseg.models.unet3d.ModelConfig", **checkpoint.model_config.to_dict()},
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": _preprocessing(checkpoint.plan)},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": roi,
            "sw_batch_size": preset.infer.sw_batch_size,
            "overlap": preset.infer.overlap,
            "mode": "gaussian",
        },
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
                *_largest_component(checkpoint.postprocess),
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "seg",
                    "output_dtype": "$numpy.uint8",
                    "separate_folder": False,
                },
            ],
        },
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
        },
        "checkpointloader": {
            "_target_": "CheckpointLoader",
            "load_path": "$@bundle_root + '/models/model.pt'",
            "load_dict": {"model": "@network"},
        },
        "initialize": ["$@checkpointloader(@evaluator)"],
        "run": ["$@evaluator.run()"],
    }


def metadata(checkpoint: ckpt.Checkpoint) -> dict:
    card = read_card(checkpoint.path) if checkpoint.path else None
    channels = {str(k): v for k, v in sorted(checkpoint.labels.items())}
    modality = "CT" if checkpoint.plan.normalization == "ct" else "MRI"
    meta = {
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported by napari-volseg {__version__}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "optional_packages_version": {"nibabel": "", "napari-volseg": __version__},
        "task": card.task if card else checkpoint.task,
        "description": (card.description if card else f"napari-volseg 3D U-Net for {checkpoint.task}")
        + f"; post-processing: {post.describe(checkpoint.postprocess)}",
        "authors": "napari-volseg",
        "copyright": card.attribution if card else "",
        "license": card.licence if card else "",
        "data_source": card.training_data if card else checkpoint.task,
        "data_type": "nibabel",
        "image_classes": f"{checkpoint.plan.in_channels} channel(s), {modality}",
        "label_classes": ", ".join(f"{k} is {v}" for k, v in channels.items()),
        "pred_classes": f"{len(channels)} channels OneHot data: " + ", ".join(f"{k} {v}" for k, v in channels.items()),
        "intended_use": "research; not for diagnostic purposes",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield" if modality == "CT" else "magnitude",
                    "modality": modality,
                    "num_channels": checkpoint.plan.in_channels,
                    "spatial_shape": inference_config(checkpoint)["inferer"]["roi_size"],
                    "dtype": "float32",
                    "is_patch_data": True,
                    "channel_def": {str(i): "image" for i in range(checkpoint.plan.in_channels)},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(channels),
                    "dtype": "float32",
                    "is_patch_data": True,
                    "channel_def": channels,
                }
            },
        },
    }
    if card is not None and card.held_out:
        meta["eval_metrics"] = {"mean_dice": round(card.mean_dice, 4)}
    return meta


def export_bundle(checkpoint: ckpt.Checkpoint, out: Path) -> list[Path]:
    """Write the bundle into folder ``out``; returns its files."""
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    (out / "docs").mkdir(exist_ok=True)
    written = [out / "configs" / "metadata.json", out / "configs" / "inference.json", out / "models" / "model.pt"]
    written[0].write_text(json.dumps(metadata(checkpoint), indent=2))
    written[1].write_text(json.dumps(inference_config(checkpoint), indent=2))
    torch.save({k: v.float().contiguous() for k, v in checkpoint.state.items()}, written[2])
    readme = out / "docs" / "README.md"
    readme.write_text(
        "# napari-volseg model as a MONAI bundle\n\nPut NIfTI images in data/ and run\n\n"
        "    python -m monai.bundle run --config_file configs/inference.json --meta_file configs/metadata.json\n\n"
        "(needs napari-volseg, whose UNet3D is the network, and pytorch-ignite for the evaluator).\n"
    )
    return written + [readme]
