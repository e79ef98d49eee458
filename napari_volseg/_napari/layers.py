"""Volumes to napari LayerData tuples and back: scale from spacing, geometry kept in metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_volseg.io import volumes
from napari_volseg.io.geometry import Geometry, Volume, geometry_from_spacing
from napari_volseg.io.new_task import looks_like_ct

META_KEY = "volseg"
LABEL_FOLDERS = {"labelstr", "labelsts", "labels", "segmentations"}
GROUND_TRUTH = "ground truth"


def display_range(data: np.ndarray, modality: str | None = None) -> tuple[float, float]:
    """Contrast limits: a soft-tissue window (-160..240 HU) for CT, else the 0.5-99.5 percentiles."""
    looks_ct = modality == "CT" or (modality is None and looks_like_ct(data))
    if looks_ct:
        return (-160.0, 240.0)
    sample = data[..., ::2, ::2].ravel() if data.ndim >= 3 else data.ravel()
    lo, hi = np.percentile(sample, [0.5, 99.5])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)


def _meta(volume: Volume, role: str, case: str | None, task: Path | None = None) -> dict[str, Any]:
    return {
        META_KEY: {
            "geometry": volume.geometry,
            "source": str(volume.source) if volume.source else None,
            "role": role,
            "case": case,
            "task": str(task) if task else None,
            "issues": list(volume.issues),
        }
    }


def image_layer(
    volume: Volume, name: str, case: str | None = None, modality: str | None = None, task: Path | None = None
) -> tuple:
    """LayerData for an image; multi-channel volumes become one layer per channel."""
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": volume.spacing,
        "translate": volume.geometry.origin_zyx,
        "metadata": _meta(volume, "image", case, task),
        "colormap": "gray",
    }
    if volume.channels > 1:  # one layer per volume, the first shown: overlaid additively they read as one image
        kwargs["channel_axis"] = 0
        kwargs["name"] = [f"{name} [{i}]" for i in range(volume.channels)]
        kwargs["visible"] = [i == 0 for i in range(volume.channels)]
        kwargs["blending"] = "translucent"
        kwargs["contrast_limits"] = [display_range(volume.data[i], modality) for i in range(volume.channels)]
    else:
        kwargs["contrast_limits"] = display_range(volume.data, modality)
    return (volume.data, kwargs, "image")


def labels_layer(
    volume: Volume, name: str, case: str | None = None, role: str = GROUND_TRUTH, task: Path | None = None
) -> tuple:
    """LayerData for labels; the ground truth is drawn in one colour (green), so a prediction (magenta) differs."""
    kwargs = {
        "name": name,
        "scale": volume.spacing,
        "translate": volume.geometry.origin_zyx,
        "metadata": _meta(volume, role, case, task),
        "opacity": 0.5,
        "colormap": label_colors(role),
    }
    return (volume.data, kwargs, "labels")


ROLE_COLORS = {GROUND_TRUTH: "#30d158", "prediction": "#ff2dd1"}
"""Foreground colour per role: ground truth green, prediction magenta (every label value of a role in one hue,
brighter for higher values), so the two read apart wherever they overlap."""
ERROR_COLORS = {0: "transparent", 1: "#ff3b30", 2: "#0a84ff", None: "transparent"}
"""Error layer: 1 = false positive (red), 2 = false negative (blue)."""
ERROR_NAMES = {1: "false positive", 2: "false negative"}


def label_colors(role: str, values: int = 16):
    """A napari ``DirectLabelColormap`` for ``role``: background transparent, labels 1.. in the role's hue."""
    from napari.utils.colormaps import DirectLabelColormap

    if role == "errors":
        return DirectLabelColormap(color_dict=ERROR_COLORS)
    base = np.array([int(ROLE_COLORS.get(role, "#ffd60a")[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    colors: dict[int | None, Any] = {0: "transparent", None: tuple(base) + (1.0,)}
    for value in range(1, values):
        shade = base * (1.0 - 0.35 * ((value - 1) % 3) / 2)
        colors[value] = tuple(shade) + (1.0,)
    return DirectLabelColormap(color_dict=colors)


CLASS_COLORS = ("#ff9f0a", "#30d158", "#0a84ff", "#ff375f", "#bf5af2", "#64d2ff", "#ffd60a")
UNLABELLED_COLOR = "#c0c4cc55"


def annotation_colors(num_classes: int, unlabelled: int) -> dict:
    """An annotation layer's colours (value -> colour): background clear, classes 1.. from a fixed palette, the
    task's ``unlabelled`` value a grey veil (voxels nobody has annotated yet)."""
    colors = {0: "transparent", None: "#ff00ff", unlabelled: UNLABELLED_COLOR}
    colors.update({k: CLASS_COLORS[(k - 1) % len(CLASS_COLORS)] for k in range(1, num_classes)})
    return colors


def case_layer_data(task, case) -> list[tuple]:
    """LayerData of one task case: its image and, for a labelled case, the ground truth."""
    image, label = case.load()
    layers = [image_layer(image, case.id, case=case.id, modality=task.modalities.get(0), task=task.root)]
    if label is not None:
        layers.append(labels_layer(label, f"{case.id} {GROUND_TRUTH}", case=case.id, task=task.root))
    return layers


def _looks_like_labels(path: Path, volume: Volume) -> bool:
    if path.parent.name.lower() in LABEL_FOLDERS or path.name.lower().endswith(".seg.nrrd"):
        return True
    data = volume.data
    if volume.channels > 1 or not np.issubdtype(data.dtype, np.integer) or data.min() < 0 or data.max() > 255:
        return False
    return len(np.unique(data[::2, ::2, ::2])) <= 16


def file_layer_data(path: Path, series: str | None = None) -> tuple:
    """LayerData of one volume (a NIfTI, NRRD or MetaImage file, a DICOM series): ``<case>`` for an image,
    ``<case> ground truth`` for a label file. ``series``: which DICOM series of a folder holding several."""
    volume = volumes.read(path, series=series)
    case = volumes.case_id(path, volume.geometry)
    if _looks_like_labels(path, volume):
        return labels_layer(volumes.read(path, label=True, series=series), f"{case} {GROUND_TRUTH}", case=case)
    if volume.channels > 1:  # a 4D file opens as one layer per channel: said, not done in silence
        volume.issues.append(
            f"{path.name} holds {volume.channels} volumes (channels or time points): opened as '{case} [0]' (shown) "
            f"to '{case} [{volume.channels - 1}]' (hidden); select the one to segment, Predict reads the volumes its "
            "model reads"
        )
    return image_layer(volume, case, case=case)


def geometry_of(meta: dict[str, Any], shape_zyx: tuple[int, ...]) -> Geometry:
    """The source geometry kept in a layer's metadata, or one built from its scale and translate."""
    stored = (meta.get("metadata") or {}).get(META_KEY, {}).get("geometry")
    if isinstance(stored, Geometry) and stored.shape_zyx == tuple(shape_zyx):
        return stored
    scale = tuple(meta.get("scale") or (1.0, 1.0, 1.0))[-3:]
    translate = tuple(meta.get("translate") or (0.0, 0.0, 0.0))[-3:]
    return geometry_from_spacing(tuple(shape_zyx), scale, translate)


def _swatch(color: str, text: str) -> str:
    return f'<span style="color:{color}">■</span> {text}'


LEGEND = (
    "&nbsp;&nbsp;".join(
        [_swatch(ROLE_COLORS["prediction"], "prediction"), _swatch(ROLE_COLORS[GROUND_TRUTH], GROUND_TRUTH)]
    )
    + "<br>errors layer: "
    + "&nbsp;&nbsp;".join(_swatch(ERROR_COLORS[k], v) for k, v in ERROR_NAMES.items())
)
"""The Predict tab's key to the colours of its layers, on two lines of their own (one line wrapped at 430 px, in
the middle of "false negative (errors)")."""


def image_in_view(viewer):
    """The image a face works on without a task: the selected image layer, else the top one shown (a dropped scan)."""
    from napari.layers import Image

    active = viewer.layers.selection.active
    if isinstance(active, Image):
        return active
    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    shown = [layer for layer in images if layer.visible]  # a 4D scan's hidden volumes are not the one in view
    return (shown or images)[-1] if images else None
