"""Volumes to napari LayerData tuples and back: scale from spacing, geometry kept in metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_volseg.io import nifti

META_KEY = "volseg"


def display_range(data: np.ndarray, modality: str | None = None) -> tuple[float, float]:
    """Contrast limits: a soft-tissue window (-160..240 HU) for CT, else the 0.5-99.5 percentiles."""
    looks_ct = modality == "CT" or (
        modality is None and np.issubdtype(data.dtype, np.signedinteger) and data.min() <= -500
    )
    if looks_ct:
        return (-160.0, 240.0)
    sample = data[..., ::2, ::2].ravel() if data.ndim >= 3 else data.ravel()
    lo, hi = np.percentile(sample, [0.5, 99.5])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)


def _meta(volume: nifti.Volume, role: str, case: str | None) -> dict[str, Any]:
    return {
        META_KEY: {
            "geometry": volume.geometry,
            "source": str(volume.source) if volume.source else None,
            "role": role,
            "case": case,
            "issues": list(volume.issues),
        }
    }


def image_layer(volume: nifti.Volume, name: str, case: str | None = None, modality: str | None = None) -> tuple:
    """LayerData for an image; multi-channel volumes become one layer per channel."""
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": volume.spacing,
        "translate": volume.geometry.origin_zyx,
        "metadata": _meta(volume, "image", case),
        "colormap": "gray",
    }
    if volume.channels > 1:
        kwargs["channel_axis"] = 0
        kwargs["name"] = [f"{name} [{i}]" for i in range(volume.channels)]
        kwargs["contrast_limits"] = [display_range(volume.data[i], modality) for i in range(volume.channels)]
    else:
        kwargs["contrast_limits"] = display_range(volume.data, modality)
    return (volume.data, kwargs, "image")


def labels_layer(volume: nifti.Volume, name: str, case: str | None = None, role: str = "ground truth") -> tuple:
    kwargs = {
        "name": name,
        "scale": volume.spacing,
        "translate": volume.geometry.origin_zyx,
        "metadata": _meta(volume, role, case),
        "opacity": 0.5,
    }
    return (volume.data, kwargs, "labels")


def case_layer_data(task, case) -> list[tuple]:
    """LayerData of one task case: its image and, for a labelled case, the ground truth."""
    image, label = case.load()
    layers = [image_layer(image, case.id, case=case.id, modality=task.modalities.get(0))]
    if label is not None:
        layers.append(labels_layer(label, f"{case.id} ground truth", case=case.id))
    return layers


def geometry_of(meta: dict[str, Any], shape_zyx: tuple[int, ...]) -> nifti.Geometry:
    """The source geometry kept in a layer's metadata, or one built from its scale and translate."""
    stored = (meta.get("metadata") or {}).get(META_KEY, {}).get("geometry")
    if isinstance(stored, nifti.Geometry) and stored.shape_zyx == tuple(shape_zyx):
        return stored
    scale = tuple(meta.get("scale") or (1.0, 1.0, 1.0))[-3:]
    translate = tuple(meta.get("translate") or (0.0, 0.0, 0.0))[-3:]
    return nifti.geometry_from_spacing(tuple(shape_zyx), scale, translate)
