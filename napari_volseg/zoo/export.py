"""Export a napari-volseg checkpoint: ONNX, TorchScript, bioimage.io, MONAI bundle.

``export(model, fmt, out)`` is what ``volseg export`` runs. ONNX and TorchScript write the network
with dynamic batch and spatial size (each a multiple of the net's divisor, 16 for cpu-lean) and,
beside it, ``<stem>.json``: the preprocessing plan, the inference settings, the labels, the model
card, the post-processing napari-volseg applies to the labels (``postprocess``: largest connected
component of some classes, which no exported network can run) and the steps a caller must take
around the network. A cascade exports both nets
(``<stem>.onnx`` and ``<stem>.locator.onnx``) and the JSON says how they chain.

Network input: float32 ``(n, channels, z, y, x)`` already preprocessed (plan applied), axes in
napari-volseg's canonical LPS+ order; output: logits ``(n, classes, z, y, x)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from napari_volseg import __version__
from napari_volseg import postprocess as post
from napari_volseg.config import EXPORT_FORMATS
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.zoo.card import read_card
from napari_volseg.zoo.networks import ExportError, onnx_file, trace_torchscript
from napari_volseg.zoo.registry import resolve

FORMATS = EXPORT_FORMATS


def load_for_export(model: str | os.PathLike) -> ckpt.Checkpoint:
    """The checkpoint behind a name or path; an imported MONAI bundle is refused with one line."""
    from napari_volseg.zoo.bundle_import import BUNDLE_FORMAT

    path = resolve(model)
    if path.is_dir() or ckpt.read_meta(path).get("format") == BUNDLE_FORMAT:
        raise ExportError(f"{path.name} is a MONAI bundle: export works on napari-volseg checkpoints")
    return ckpt.load(path)


def description(checkpoint: ckpt.Checkpoint, files: dict[str, str]) -> dict:
    """What a caller needs around the exported network(s): plan, settings, labels, card, steps."""
    preset = checkpoint.preset
    info = {
        "format": "napari-volseg-export/1",
        "version": __version__,
        "files": files,
        "input": "float32 (n, channels, z, y, x): the plan applied; z, y, x multiples of "
        f"{checkpoint.model_config.divisor}; axes in LPS+ order (z superior, y posterior, x left)",
        "output": "logits (n, classes, z, y, x); softmax over classes",
        "labels": {str(k): v for k, v in checkpoint.labels.items()},
        "model_config": checkpoint.model_config.to_dict(),
        "plan": checkpoint.plan.to_dict(),
        "sliding_window": {
            "roi_size": list(preset.train.patch_size),
            "overlap": preset.infer.overlap,
            "mode": "gaussian",
        },
        "steps": [
            "load the image in LPS+ (z, y, x) order",
            "crop to the body box (plan.crop) or, for a cascade, to the locator's box",
            "resample to plan.target_spacing (trilinear) or plan.target_shape",
            "normalise: z-score per volume (zscore; a cascade's box by the whole volume's mean and std when "
            "plan.zscore_region is 'volume', by its own when 'box') or clip to ct_clip then (x - ct_mean) / ct_std (ct)",
            "sliding-window logits, softmax, resample the probabilities back to the crop, argmax, paste into the volume",
            f"post-process the labels: {post.describe(checkpoint.postprocess)}",
        ],
        "postprocess": {
            "largest_component": list(checkpoint.postprocess.largest_component),
            "connectivity": 26,
            "rule": checkpoint.postprocess.rule,
            "how": post.describe(checkpoint.postprocess),
        },
    }
    if checkpoint.interactive is not None:  # a promptable net: its input is the prompts' channels on a region
        settings = checkpoint.interactive
        info["interactive"] = settings
        info.pop("sliding_window")
        info["input"] = (
            f"float32 (n, {len(settings.get('channels', []))}, g, g, g), g = interactive.grid: the channels "
            f"{settings.get('channels')} on a cube around the prompts; z, y, x in LPS+ order"
        )
        info["steps"] = [
            "load the image in LPS+ (z, y, x) order",
            "region: the box of the object's prompts and current mask, grown by max(15 %, 6 mm) a side, made a cube "
            "in mm of at least interactive.min_extent_mm and at most interactive.max_extent_mm, inside the scan",
            "resample the region to the grid (trilinear); channel 0 the region z-scored by its own mean and std; "
            "channels 1 and 2 balls of interactive.click_radius grid voxels at positive and negative clicks (and "
            "scribbled voxels); channel 3 the box filled on its slice; channel 4 the current mask resampled",
            "logits (2 classes) back to the region (trilinear), foreground where class 1 wins; paste into the mask",
        ]
        info.pop("postprocess")
    if checkpoint.locator is not None:
        loc = checkpoint.locator
        info["locator"] = {
            "file": files["locator"],
            "model_config": loc.model_config.to_dict(),
            "plan": loc.plan.to_dict(),
            "roi_size": list(loc.patch),
            "margin_mm": loc.margin_mm,
            "one_piece": loc.one_piece,
            "how": "run the locator on the whole volume with its own plan; its foreground's bounding box "
            + (
                "(its largest 26-connected component only)"
                if loc.one_piece
                else "(components under a tenth of the largest ignored)"
            )
            + ", grown by margin_mm, is the crop of the main net",
        }
    card = read_card(checkpoint.path) if checkpoint.path else None
    if card is not None:
        info["card"] = card.to_dict()
    return info


def export_network(checkpoint: ckpt.Checkpoint, fmt: str, out: Path) -> list[Path]:
    """ONNX or TorchScript: ``out`` (+ ``<stem>.locator.<ext>`` for a cascade) and ``<stem>.json``."""
    write = onnx_file if fmt == "onnx" else trace_torchscript
    ext = ".onnx" if fmt == "onnx" else ".pt"
    out = out if out.suffix else out.with_suffix(ext)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    written = [write(checkpoint.build_model().eval(), out)]
    files = {"network": out.name}
    if checkpoint.locator is not None:
        locator = stem.with_name(f"{stem.name}.locator{out.suffix}")
        written.append(write(checkpoint.locator.build_model().eval(), locator))
        files["locator"] = locator.name
    plan = stem.with_suffix(".json")
    plan.write_text(json.dumps(description(checkpoint, files), indent=2))
    return written + [plan]


def export(model: str | os.PathLike, fmt: str, out: str | os.PathLike) -> list[Path]:
    """Export ``model`` (name or checkpoint path) as ``fmt`` to ``out``; returns the files written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    checkpoint = load_for_export(model)
    out = Path(out)
    if fmt in ("onnx", "torchscript"):
        return export_network(checkpoint, fmt, out)
    if checkpoint.locator is not None:
        raise ExportError(
            f"{checkpoint.path.name} is a coarse-to-fine cascade (two nets); a {fmt} package holds one network: "
            "export onnx or torchscript (both nets and the plan) instead"
        )
    if fmt == "bioimageio":
        from napari_volseg.zoo.bioimageio import export_bioimageio

        return export_bioimageio(checkpoint, out)
    from napari_volseg.zoo.bundle_export import export_bundle

    return export_bundle(checkpoint, out)
