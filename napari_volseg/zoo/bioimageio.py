"""Export a (single-network) checkpoint as a BioImage Model Zoo package (model spec 0.5).

The folder holds ``rdf.yaml``, TorchScript weights, a test input and its expected output (``.npy``),
a cover image and ``README.md``. The package's own pre/postprocessing covers what the spec can say:
per-volume z-score (MRI plans) or clip + fixed z-score (CT plans), and softmax over classes. The
resampling to the plan's spacing cannot be written in the spec: the axes carry that spacing as their
``scale`` (mm), the README says to resample first, and ``plan.json`` holds the whole plan.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from napari_volseg import __version__
from napari_volseg import postprocess as post
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.zoo.card import MSD_ATTRIBUTION, read_card
from napari_volseg.zoo.networks import trace_torchscript

FORMAT_VERSION = "0.5.4"
AXES = ("z", "y", "x")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _preprocessing(plan) -> list[dict]:
    if plan.normalization == "ct":
        lo, hi = plan.ct_clip or (-1024.0, 3071.0)
        return [
            {"id": "clip", "kwargs": {"min": float(lo), "max": float(hi)}},
            {"id": "fixed_zero_mean_unit_variance", "kwargs": {"mean": plan.ct_mean, "std": plan.ct_std}},
        ]
    return [{"id": "zero_mean_unit_variance", "kwargs": {"axes": list(AXES)}}]


def _space_axes(plan, divisor: int, like: str | None = None) -> list[dict]:
    spacing = plan.target_spacing or (1.0, 1.0, 1.0)
    axes = []
    for name, scale in zip(AXES, spacing, strict=True):
        size = {"tensor_id": like, "axis_id": name} if like else {"min": divisor, "step": divisor}
        axes.append({"type": "space", "id": name, "size": size, "unit": "millimeter", "scale": float(scale)})
    return axes


def _cover(image: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """A 2:1 cover: the middle slice of the test input beside its predicted labels."""
    from PIL import Image

    z = image.shape[0] // 2
    left = image[z]
    left = ((left - left.min()) / max(float(np.ptp(left)), 1e-6) * 255).astype(np.uint8)
    right = (labels[z] * (255 // max(1, int(labels.max()) or 1))).astype(np.uint8)
    both = Image.fromarray(np.concatenate([left, right], axis=1)).resize((512, 256), Image.NEAREST)
    both.save(path)
    return path


def _readme(checkpoint: ckpt.Checkpoint, card) -> str:
    plan = checkpoint.plan
    lines = [
        f"# {card.name if card else checkpoint.task or 'napari-volseg model'}",
        "",
        card.description if card else f"A napari-volseg 3D U-Net trained on {checkpoint.task}.",
        "",
        "## Input",
        "One volume as float32 (batch, channel, z, y, x) in LPS+ axis order (z superior, y posterior, x left), "
        f"resampled to {plan.target_spacing} mm (z, y, x) and cropped to the body; "
        f"every spatial size a multiple of {checkpoint.model_config.divisor}. "
        "The package normalises the intensities itself; plan.json holds the full preprocessing plan.",
        "",
        "## Output",
        "Class probabilities (batch, class, z, y, x): "
        + ", ".join(f"{k} {v}" for k, v in sorted(checkpoint.labels.items())),
        "",
        "## Post-processing (not in the package: apply it to the argmax labels)",
        post.describe(checkpoint.postprocess),
        "",
        f"Exported by napari-volseg {__version__}.",
    ]
    if card is not None:
        lines += ["", "## Model card", "```json", json.dumps(card.to_dict(), indent=2), "```"]
    return "\n".join(lines) + "\n"


def export_bioimageio(checkpoint: ckpt.Checkpoint, out: Path) -> list[Path]:
    """Write the package into folder ``out``; returns its files (``rdf.yaml`` first)."""
    out.mkdir(parents=True, exist_ok=True)
    card = read_card(checkpoint.path) if checkpoint.path else None
    net = checkpoint.build_model().eval()
    divisor = net.config.divisor
    weights = trace_torchscript(net, out / "weights_torchscript.pt")
    from napari_volseg.preprocess import normalise

    rng = np.random.default_rng(0)
    test_input = rng.normal(size=(1, net.config.in_channels, 2 * divisor, 2 * divisor, 2 * divisor))
    test_input = test_input.astype(np.float32)
    with torch.no_grad():
        normalised = normalise(test_input[0], checkpoint.plan)[None]
        probs = torch.softmax(net(torch.from_numpy(normalised)), dim=1).numpy()
    files = {
        "test_input.npy": test_input,
        "test_output.npy": probs.astype(np.float32),
    }
    for name, array in files.items():
        np.save(out / name, array)
    _cover(test_input[0, 0], probs[0].argmax(axis=0), out / "cover.png")
    (out / "README.md").write_text(_readme(checkpoint, card))
    (out / "plan.json").write_text(json.dumps(checkpoint.plan.to_dict(), indent=2))
    channels = [f"channel{i}" for i in range(net.config.in_channels)]
    classes = [checkpoint.labels.get(k, f"class {k}") for k in range(net.config.num_classes)]
    rdf = {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": (card.name if card else f"napari-volseg {checkpoint.task or 'model'}"),
        "description": (card.description if card else f"3D U-Net segmentation of {checkpoint.task}")[:1000],
        "authors": [{"name": "napari-volseg"}],
        "cite": [{"text": MSD_ATTRIBUTION, "url": "http://medicaldecathlon.com/"}],
        "license": card.licence if card else "CC-BY-4.0",
        "documentation": "README.md",
        "covers": ["cover.png"],
        "attachments": [{"source": "plan.json", "sha256": _sha256(out / "plan.json")}],
        "tags": ["3d", "segmentation", "unet", "napari-volseg", "medical"],
        "version": __version__,
        "inputs": [
            {
                "id": "image",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": channels}]
                + _space_axes(checkpoint.plan, divisor),
                "test_tensor": {"source": "test_input.npy", "sha256": _sha256(out / "test_input.npy")},
                "data": {"type": "float32"},
                "preprocessing": _preprocessing(checkpoint.plan),
            }
        ],
        "outputs": [
            {
                "id": "probabilities",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": classes}]
                + _space_axes(checkpoint.plan, divisor, like="image"),
                "test_tensor": {"source": "test_output.npy", "sha256": _sha256(out / "test_output.npy")},
                "data": {"type": "float32"},
                "postprocessing": [{"id": "softmax", "kwargs": {"axis": "channel"}}],
            }
        ],
        "weights": {
            "torchscript": {
                "source": weights.name,
                "sha256": _sha256(weights),
                "pytorch_version": torch.__version__.split("+")[0],
            }
        },
    }
    if card is not None and card.licence == "CC-BY-SA-4.0":
        rdf["cite"][0]["text"] = card.attribution
    rdf_path = out / "rdf.yaml"
    rdf_path.write_text(yaml.safe_dump(rdf, sort_keys=False))
    return [rdf_path, weights, out / "test_input.npy", out / "test_output.npy", out / "cover.png", out / "README.md"]
