"""Preprocessing plans: crop, resample, normalise, and the exact way back to the source grid.

A :class:`Plan` is plain data (stored in checkpoints, hashed for the disk cache). ``apply`` turns a
loaded volume into float32 ``(c, z, y, x)`` on the plan's grid; ``invert`` maps class probabilities
on that grid back to labels with exactly the source volume's canonical shape (the geometry object
then writes them in the file's own voxel order). Probabilities, not labels, are resampled on the
way back: the label boundary then falls between voxels of the coarse grid instead of on them.

Two kinds of plan:
- ``resample="spacing"`` (default, nnU-Net style): resample to a target spacing derived from the
  task (median spacing; for anisotropic tasks the coarse axis takes its 10th percentile), CT
  clipped to the foreground's 0.5/99.5 percentiles then z-scored with the foreground's mean and
  std, MRI z-scored per volume, cropped to the body/nonzero box.
- ``resample="shape"`` (the seed report): resize the whole volume to a fixed shape, z-score.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_volseg import paths
from napari_volseg.errors import VolsegError
from napari_volseg.io import nifti
from napari_volseg.io.decathlon import Case, Task

ANISOTROPY = 3.0
CT_BODY_HU = -500.0


@dataclass(frozen=True)
class Plan:
    """How volumes are brought to the network's grid. Spacing and shape are ``(z, y, x)``."""

    resample: str = "spacing"
    target_spacing: tuple[float, float, float] | None = None
    target_shape: tuple[int, int, int] | None = None
    normalization: str = "zscore"
    ct_clip: tuple[float, float] | None = None
    ct_mean: float = 0.0
    ct_std: float = 1.0
    crop: bool = True
    num_classes: int = 2
    in_channels: int = 1
    zscore_region: str = "volume"
    """Where a z-score's mean and std come from when a region of interest is cut (a cascade's main
    net): ``"volume"``, the whole volume's crop, so an image looks the same to the net whatever box
    is cut from it; ``"box"``, the box itself (checkpoints from before this field: a locator's box
    larger than the training boxes then brightened the atrium by 0.2-0.5 SD: the likely cause of predictions
    larger than the truth)."""

    def __post_init__(self):
        if self.resample not in ("spacing", "shape"):
            raise VolsegError(f"plan resample must be 'spacing' or 'shape', got {self.resample!r}")
        if self.resample == "spacing" and self.target_spacing is None:
            raise VolsegError("a spacing plan needs target_spacing")
        if self.resample == "shape" and self.target_shape is None:
            raise VolsegError("a shape plan needs target_shape")
        if self.normalization not in ("ct", "zscore"):
            raise VolsegError(f"normalization must be 'ct' or 'zscore', got {self.normalization!r}")
        if self.zscore_region not in ("volume", "box"):
            raise VolsegError(f"zscore_region must be 'volume' or 'box', got {self.zscore_region!r}")
        for name in ("target_spacing", "target_shape", "ct_clip"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        return cls(**{"zscore_region": "box", **d})  # plans stored before the field z-scored the box

    @property
    def hash(self) -> str:
        """Stable 12-hex digest of the plan: the disk cache's key."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=float).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


@dataclass
class Prepared:
    """A case on the plan's grid: ``image`` float32 ``(c, z, y, x)``, ``label`` uint8 ``(z, y, x)`` or None.

    ``box`` is the crop in the source canonical grid as ``((z0, z1), (y0, y1), (x0, x1))`` and
    ``source_shape`` the canonical ``(z, y, x)`` shape of the whole source volume.
    """

    image: np.ndarray
    label: np.ndarray | None
    box: tuple[tuple[int, int], ...]
    source_shape: tuple[int, int, int]
    meta: dict = field(default_factory=dict)

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in self.box)


def _channels(volume: nifti.Volume) -> np.ndarray:
    data = volume.data.astype(np.float32, copy=False)
    return data[None] if data.ndim == 3 else data


def crop_box(image_czyx: np.ndarray, ct: bool) -> tuple[tuple[int, int], ...]:
    """Bounding box of the body (CT: above -500 HU) or of the non-background voxels (MRI)."""
    first = image_czyx[0]
    mask = first > CT_BODY_HU if ct else first > first.min()
    if not mask.any():
        return tuple((0, s) for s in first.shape)
    return bounding_box(mask)


def bounding_box(mask_zyx: np.ndarray) -> tuple[tuple[int, int], ...]:
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
    image: nifti.Volume,
    label: nifti.Volume | None = None,
    box: tuple[tuple[int, int], ...] | None = None,
) -> Prepared:
    """Crop, resample and normalise one case onto the plan's grid.

    ``box`` (source canonical voxels, ``((z0, z1), (y0, y1), (x0, x1))``) replaces the plan's own
    crop: a coarse-to-fine cascade passes the region of interest its locator found. A z-score plan
    then normalises by the whole volume's statistics (``plan.zscore_region``), not the box's.
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
        if plan.num_classes == 2:
            soft = _resize(lab[None].astype(np.float32), shape, "trilinear")[0]
            out_label = (soft >= 0.5).astype(np.uint8)
        else:
            onehot = np.stack([(lab == k) for k in range(plan.num_classes)]).astype(np.float32)
            out_label = _resize(onehot, shape, "trilinear").argmax(axis=0).astype(np.uint8)
    return Prepared(image=resampled, label=out_label, box=box, source_shape=source_shape)


def invert(probabilities: np.ndarray | torch.Tensor, prepared: Prepared) -> np.ndarray:
    """Class probabilities ``(classes, z, y, x)`` on the plan grid → uint8 labels on the source grid.

    The result has exactly ``prepared.source_shape``; voxels outside the crop box are background.
    For two classes only the foreground channel is resampled (half the memory of both).
    """
    probs = probabilities if isinstance(probabilities, torch.Tensor) else torch.from_numpy(probabilities)
    probs = probs.float()
    crop = prepared.crop_shape
    if probs.shape[0] == 2:
        fg = F.interpolate(probs[None, 1:2], size=crop, mode="trilinear", align_corners=False)[0, 0]
        labels_crop = (fg >= 0.5).to(torch.uint8).numpy()
    else:
        up = F.interpolate(probs[None], size=crop, mode="trilinear", align_corners=False)[0]
        labels_crop = up.argmax(dim=0).to(torch.uint8).numpy()
    out = np.zeros(prepared.source_shape, dtype=np.uint8)
    out[tuple(slice(a, b) for a, b in prepared.box)] = labels_crop
    return out


def roi_box(
    mask_zyx: np.ndarray, spacing_zyx: tuple[float, ...], margin_mm: float, keep: float = 0.1
) -> tuple[tuple[int, int], ...] | None:
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


# ---- planning from a task -------------------------------------------------------------------


def task_spacing(cases: list[Case]) -> tuple[float, float, float]:
    """nnU-Net's target spacing: the median, except the coarse axis of an anisotropic task takes its 10th percentile."""
    spacings = np.array([c.geometry().spacing_zyx for c in cases])
    target = np.median(spacings, axis=0)
    coarse = int(np.argmax(target))
    if target[coarse] / target.min() > ANISOTROPY:
        target[coarse] = np.percentile(spacings[:, coarse], 10)
    return tuple(float(s) for s in target)


def ct_statistics(cases: list[Case], per_case: int = 20000, seed: int = 0) -> tuple[tuple[float, float], float, float]:
    """Foreground intensity statistics of CT training cases: (0.5, 99.5) percentiles, mean and std after clipping."""
    rng = np.random.default_rng(seed)
    samples = []
    for case in cases:
        image, label = case.load()
        fg = _channels(image)[0][label.data > 0]
        if fg.size:
            samples.append(rng.choice(fg, size=min(per_case, fg.size), replace=False))
    if not samples:
        return (-1024.0, 3071.0), 0.0, 1.0
    values = np.concatenate(samples)
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    clipped = np.clip(values, lo, hi)
    return (lo, hi), float(clipped.mean()), float(clipped.std())


def plan_for_task(
    task: Task,
    cases: list[Case] | None = None,
    resample: str = "spacing",
    target_spacing: tuple[float, float, float] | None = None,
    spacing_scale: float | tuple[float, float, float] = 1.0,
    target_shape: tuple[int, int, int] | None = None,
    crop: bool = True,
    max_voxels: int | None = None,
    extents_mm: tuple[float, float, float] | None = None,
    zscore_region: str = "volume",
) -> Plan:
    """Plan a task from its training cases (headers for spacing; CT foreground for intensity statistics).

    ``max_voxels`` coarsens the spacing until a region of the median volume's size (or of
    ``extents_mm``, a cascade's median region of interest) fits in that many voxels.
    """
    cases = cases or task.cases
    in_channels = max(1, len(task.modalities))
    base = Plan(
        resample=resample,
        target_spacing=(1.0, 1.0, 1.0) if resample == "spacing" else None,
        target_shape=target_shape,
        normalization="ct" if task.kind == "ct" and resample == "spacing" else "zscore",
        crop=crop if resample == "spacing" else False,
        num_classes=task.num_classes,
        in_channels=in_channels,
        zscore_region=zscore_region,
    )
    if resample == "spacing":
        spacing = np.array(target_spacing if target_spacing is not None else task_spacing(cases), dtype=float)
        spacing = spacing * np.broadcast_to(np.asarray(spacing_scale, dtype=float), (3,))
        if max_voxels:
            extents = np.asarray(extents_mm, dtype=float) if extents_mm is not None else median_extents(cases)
            voxels = float(np.prod(extents / spacing))
            if voxels > max_voxels:
                spacing = spacing * (voxels / max_voxels) ** (1.0 / 3.0)
        base = replace(base, target_spacing=tuple(round(float(s), 4) for s in spacing))
    if base.normalization == "ct":
        clip, mean, std = ct_statistics(cases)
        base = replace(base, ct_clip=clip, ct_mean=mean, ct_std=std)
    return base


def median_extents(cases: list[Case]) -> np.ndarray:
    """The median ``(z, y, x)`` extent in mm of the cases' volumes (headers only)."""
    geometries = [c.geometry() for c in cases]
    return np.median([np.array(g.shape_zyx) * np.array(g.spacing_zyx) for g in geometries], axis=0)


def needs_cascade(task: Task, settings, cases: list[Case] | None = None) -> bool:
    """Whether a preset asking for a cascade gets one: only when the task's median volume does not
    fit ``max_voxels`` at the task's own spacing (small volumes are segmented whole, at full resolution)."""
    if not settings.cascade or settings.resample != "spacing" or not settings.max_voxels:
        return False
    cases = cases or task.cases
    spacing = np.array(settings.spacing if settings.spacing is not None else task_spacing(cases), dtype=float)
    spacing = spacing * np.broadcast_to(np.asarray(settings.spacing_scale, dtype=float), (3,))
    return float(np.prod(median_extents(cases) / spacing)) > settings.max_voxels


def locator_settings(settings):
    """The plan settings of a cascade's locator stage: the whole volume on a grid of ``locator_voxels``."""
    return replace(settings, cascade=False, max_voxels=settings.locator_voxels)


def cached_settings(task: Task, settings, cases: list[Case] | None = None):
    """The whole-volume plan settings a preset preprocesses a task with ahead of training: its own,
    or for a cascade its locator's (the main stage's regions of interest are cut while training)."""
    return locator_settings(settings) if needs_cascade(task, settings, cases) else settings


def plan_from_settings(
    task: Task, settings, cases: list[Case] | None = None, extents_mm: tuple[float, float, float] | None = None
) -> Plan:
    """Plan a task from a preset's :class:`~napari_volseg.engine.config.PlanSettings`."""
    return plan_for_task(
        task,
        cases=cases,
        resample=settings.resample,
        target_spacing=settings.spacing,
        spacing_scale=settings.spacing_scale,
        target_shape=settings.shape,
        crop=settings.crop,
        max_voxels=settings.max_voxels,
        extents_mm=extents_mm,
        zscore_region=settings.zscore_region,
    )


# ---- the disk cache -------------------------------------------------------------------------


def default_cache_root() -> Path:
    return paths.preprocessed_dir()


class PreparedCache:
    """Preprocessed cases on disk under ``root/<plan hash>/``; a case is recomputed only when its files change."""

    def __init__(self, plan: Plan, root: Path | None = None):
        self.plan = plan
        self.folder = Path(root or default_cache_root()) / plan.hash
        self.hits = 0
        self.misses = 0

    def _key(self, case: Case, box=None) -> dict:
        files = [case.image_path] + ([case.label_path] if case.label_path else [])
        key = {
            "plan": self.plan.hash,
            "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        }
        if box is not None:
            key["box"] = _box_list(box)
        return key

    def _stem(self, case: Case, box=None) -> Path:
        where = str(case.image_path.resolve()) + ("" if box is None else json.dumps(_box_list(box)))
        digest = hashlib.sha1(where.encode()).hexdigest()[:8]
        return self.folder / f"{case.id}-{digest}"

    def is_cached(self, case: Case, box=None) -> bool:
        meta = self._stem(case, box).with_suffix(".json")
        try:
            return json.loads(meta.read_text())["key"] == self._key(case, box)
        except (OSError, ValueError, KeyError):
            return False

    def get(self, case: Case, box: tuple[tuple[int, int], ...] | None = None) -> Prepared:
        """The case on the plan grid (cropped to ``box`` if given), from disk when cached."""
        stem = self._stem(case, box)
        if self.is_cached(case, box):
            self.hits += 1
            meta = json.loads(stem.with_suffix(".json").read_text())
            label = np.load(f"{stem}.label.npy") if meta["has_label"] else None
            return Prepared(
                image=np.load(f"{stem}.image.npy"),
                label=label,
                box=tuple(tuple(b) for b in meta["box"]),
                source_shape=tuple(meta["source_shape"]),
                meta=meta,
            )
        self.misses += 1
        image, label = case.load()
        prepared = apply(self.plan, image, label, box=box)
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_npy(f"{stem}.image.npy", prepared.image)
        if prepared.label is not None:
            _atomic_npy(f"{stem}.label.npy", prepared.label)
        meta = {
            "key": self._key(case, box),
            "has_label": prepared.label is not None,
            "box": [list(b) for b in prepared.box],
            "source_shape": list(prepared.source_shape),
            "case": case.id,
        }
        tmp = stem.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, stem.with_suffix(".json"))
        prepared.meta = meta
        return prepared


def _box_list(box) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in box]


def _atomic_npy(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)
