"""Preprocessing: apply a :class:`~napari_volseg.planning.Plan` to a case, invert it, regions of interest.

``apply`` turns a loaded volume into float32 ``(c, z, y, x)`` on the plan's grid (crop, resample,
normalise); ``invert`` maps class probabilities on that grid back to labels with exactly the
source volume's canonical shape (the geometry object then writes them in the file's own voxel
order). Probabilities, not labels, are resampled on the way back: the label boundary then falls
between voxels of the coarse grid instead of on them. Plans are made in
:mod:`napari_volseg.planning`; prepared cases are cached by :mod:`napari_volseg.cache`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_volseg.errors import VolsegError
from napari_volseg.io.geometry import Volume
from napari_volseg.planning import Plan

CT_BODY_HU = -500.0
UNLABELLED = 255
"""Label value of unannotated voxels on the plan grid (sparse labels); the training losses ignore it."""

Box = tuple[tuple[int, int], ...]
"""A box of source canonical voxels, ``((z0, z1), (y0, y1), (x0, x1))`` (ends exclusive)."""


@dataclass
class Prepared:
    """A case on the plan's grid: ``image`` float32 ``(c, z, y, x)``, ``label`` uint8 ``(z, y, x)`` or None.

    ``box`` is the crop in the source canonical grid as ``((z0, z1), (y0, y1), (x0, x1))`` and
    ``source_shape`` the canonical ``(z, y, x)`` shape of the whole source volume.
    """

    image: np.ndarray
    label: np.ndarray | None
    box: Box
    source_shape: tuple[int, int, int]

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in self.box)


def _channels(volume: Volume) -> np.ndarray:
    data = volume.data.astype(np.float32, copy=False)
    return data[None] if data.ndim == 3 else data


def crop_box(image_czyx: np.ndarray, ct: bool) -> Box:
    """Bounding box of the body (CT: above -500 HU) or of the non-background voxels (MRI)."""
    first = image_czyx[0]
    mask = first > CT_BODY_HU if ct else first > first.min()
    if not mask.any():
        return tuple((0, s) for s in first.shape)
    return bounding_box(mask)


def bounding_box(mask_zyx: np.ndarray) -> Box:
    """``((z0, z1), (y0, y1), (x0, x1))`` of a non-empty boolean mask (ends exclusive)."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.nonzero(mask_zyx.any(axis=other))[0]
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _resize(array_czyx: np.ndarray, shape: tuple[int, int, int], mode: str) -> np.ndarray:
    """Resample channel-first ``(c, z, y, x)`` to ``shape`` (torch interpolation on the CPU).

    MONAI's ``Resize`` wraps the same ``torch.nn.functional.interpolate`` call; it is called directly
    here because the arrays are already in canonical index space (no affine to track) and the same
    function serves ``invert`` on torch tensors.
    """
    if tuple(array_czyx.shape[1:]) == tuple(shape):
        return np.ascontiguousarray(array_czyx)
    t = torch.from_numpy(np.ascontiguousarray(array_czyx))[None]
    kwargs = {"align_corners": False} if mode == "trilinear" else {}
    out = F.interpolate(t, size=tuple(int(s) for s in shape), mode=mode, **kwargs)
    return out[0].numpy()


def grid_shape(plan: Plan, crop_shape: tuple[int, ...], spacing: tuple[float, ...]) -> tuple[int, int, int]:
    """The ``(z, y, x)`` shape a crop of ``crop_shape`` voxels at ``spacing`` mm gets on the plan grid."""
    if plan.resample == "shape":
        return tuple(int(s) for s in plan.target_shape)
    return tuple(
        max(1, int(round(n * s / t))) for n, s, t in zip(crop_shape, spacing, plan.target_spacing, strict=True)
    )


def zscore_statistics(image_czyx: np.ndarray) -> list[tuple[float, float]]:
    """Mean and std of each channel of ``(c, z, y, x)``."""
    return [(float(ch.mean()), float(ch.std())) for ch in image_czyx]


def normalise(image_czyx: np.ndarray, plan: Plan, stats: list[tuple[float, float]] | None = None) -> np.ndarray:
    """CT: clip and scale by the plan's foreground statistics; else z-score each channel, by ``stats``
    (per-channel mean and std) if given, else by its own."""
    if plan.normalization == "ct":
        lo, hi = plan.ct_clip if plan.ct_clip else (-1024.0, 3071.0)
        return ((np.clip(image_czyx, lo, hi) - plan.ct_mean) / max(plan.ct_std, 1e-6)).astype(np.float32)
    stats = stats or zscore_statistics(image_czyx)
    out = np.empty_like(image_czyx, dtype=np.float32)
    for c, (mean, std) in enumerate(stats):
        out[c] = (image_czyx[c] - mean) / max(std, 1e-6)
    return out


def apply(
    plan: Plan,
    image: Volume,
    label: Volume | None = None,
    box: Box | None = None,
    unlabelled: int | None = None,
) -> Prepared:
    """Crop, resample and normalise one case onto the plan's grid.

    ``box`` (source canonical voxels, ``((z0, z1), (y0, y1), (x0, x1))``) replaces the plan's own
    crop: a coarse-to-fine cascade passes the region of interest its locator found. A z-score plan
    then normalises by the whole volume's statistics (``plan.zscore_region``), not the box's. Label
    voxels of value ``unlabelled`` (a task's declared value for unannotated voxels) become :data:`UNLABELLED`.
    """
    data = _channels(image)
    if data.shape[0] != plan.in_channels:
        raise VolsegError(f"the plan expects {plan.in_channels} channel(s), the image has {data.shape[0]}")
    source_shape = tuple(int(s) for s in data.shape[1:])
    stats = None
    if box is not None:
        box = tuple((max(0, int(a)), min(n, int(b))) for (a, b), n in zip(box, source_shape, strict=True))
        if plan.normalization == "zscore" and plan.zscore_region == "volume":
            whole = crop_box(data, ct=False) if plan.crop else tuple((0, s) for s in source_shape)
            stats = zscore_statistics(data[(slice(None),) + tuple(slice(a, b) for a, b in whole)])
    elif plan.crop:
        box = crop_box(data, plan.normalization == "ct")
    else:
        box = tuple((0, s) for s in source_shape)
    sl = tuple(slice(a, b) for a, b in box)
    cropped = data[(slice(None),) + sl]
    shape = grid_shape(plan, cropped.shape[1:], image.spacing)
    resampled = normalise(_resize(cropped, shape, "trilinear"), plan, stats)
    out_label = None
    if label is not None:
        lab = label.data[sl]
        if unlabelled is not None and (lab == unlabelled).any():
            out_label = _resize_sparse(lab, unlabelled, plan.num_classes, shape)
        elif plan.num_classes == 2:
            soft = _resize(lab[None].astype(np.float32), shape, "trilinear")[0]
            out_label = (soft >= 0.5).astype(np.uint8)
        else:
            onehot = np.stack([(lab == k) for k in range(plan.num_classes)]).astype(np.float32)
            out_label = _resize(onehot, shape, "trilinear").argmax(axis=0).astype(np.uint8)
    return Prepared(image=resampled, label=out_label, box=box, source_shape=source_shape)


def _resize_sparse(lab: np.ndarray, unlabelled: int, num_classes: int, shape: tuple[int, int, int]) -> np.ndarray:
    """A partly annotated ``(z, y, x)`` label onto ``shape``: each grid voxel takes the majority class of
    the annotated source voxels it covers (area averaging, so a single annotated slice survives any
    coarsening) and is :data:`UNLABELLED` where it covers none."""
    onehot = np.stack([lab == k for k in range(num_classes)]).astype(np.float32)
    fractions = _resize(onehot, shape, "area")
    out = fractions.argmax(axis=0).astype(np.uint8)
    out[fractions.sum(axis=0) < 1e-6] = UNLABELLED
    return out


def invert(probabilities: np.ndarray | torch.Tensor, prepared: Prepared) -> np.ndarray:
    """Class probabilities ``(classes, z, y, x)`` on the plan grid → uint8 labels on the source grid.

    The result has exactly ``prepared.source_shape``; voxels outside the crop box are background.
    For two classes only the foreground channel is resampled (half the memory of both).
    """
    probs = probabilities if isinstance(probabilities, torch.Tensor) else torch.from_numpy(probabilities)
    probs = probs.float()
    crop = prepared.crop_shape
    out = np.zeros(prepared.source_shape, dtype=np.uint8)
    view = out[tuple(slice(a, b) for a, b in prepared.box)]
    if probs.shape[0] == 2:  # thresholded straight into the labels: no full-size mask or label copies beside them
        fg = F.interpolate(probs[None, 1:2], size=crop, mode="trilinear", align_corners=False)[0, 0].numpy()
        np.greater_equal(fg, 0.5, out=view, casting="unsafe")
    else:
        up = F.interpolate(probs[None], size=crop, mode="trilinear", align_corners=False)[0]
        view[...] = up.argmax(dim=0).numpy()
    return out


def cap_box(box: Box, mask_zyx: np.ndarray, spacing_zyx: tuple[float, ...], max_extent_mm: tuple[float, ...]) -> Box:
    """``box`` shrunk, along each axis where it is longer than ``max_extent_mm``, to that length centred on the mask's
    centre of mass inside it (a locator marking a whole chest: the main net is shown what it was trained on)."""
    from scipy import ndimage

    slices = tuple(slice(a, b) for a, b in box)
    centre = ndimage.center_of_mass(mask_zyx[slices])
    capped = []
    for (a, b), c, spacing, longest, n in zip(box, centre, spacing_zyx, max_extent_mm, mask_zyx.shape, strict=True):
        size = int(np.ceil(longest / spacing))
        if b - a > size:
            start = int(round(a + c - size / 2))
            a, b = max(0, min(start, n - size)), max(0, min(start, n - size)) + size
        capped.append((a, b))
    return tuple(capped)


def roi_box(mask_zyx: np.ndarray, spacing_zyx: tuple[float, ...], margin_mm: float, keep: float = 0.1) -> Box | None:
    """The bounding box of a foreground mask's main connected components, grown by ``margin_mm``.

    Components smaller than ``keep`` times the largest are ignored (a locator's stray false
    positives must not stretch the region); ``None`` when the mask is empty.
    """
    from scipy import ndimage

    components, n = ndimage.label(mask_zyx)
    if n == 0:
        return None
    sizes = np.bincount(components.ravel())[1:]
    kept = np.isin(components, np.nonzero(sizes >= keep * sizes.max())[0] + 1)
    grow = [int(np.ceil(margin_mm / spacing)) for spacing in spacing_zyx]
    return tuple(
        (max(0, a - g), min(n, b + g)) for (a, b), g, n in zip(bounding_box(kept), grow, mask_zyx.shape, strict=True)
    )
