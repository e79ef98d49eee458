"""Planning: task statistics -> plan settings -> :class:`Plan`, and the cascade decision.

nnU-Net's fingerprint -> planner split: :func:`statistics` reads what a plan depends on from the
training cases once (spacing and extent from the headers; for CT the foreground intensities),
:func:`make_plan` turns a preset's :class:`~napari_volseg.config.PlanSettings` (the
settings live with the other training settings in ``config.py``, the one source of
defaults) and those statistics into a :class:`Plan`. A plan is plain data: stored in checkpoints,
hashed for the disk cache (:mod:`napari_volseg.cache`), applied and inverted by
:mod:`napari_volseg.preprocess`.

Every plan is computed from the training split that :func:`napari_volseg.io.decathlon.training_split`
decides (:func:`plan_run`), so ``volseg preprocess``, the Preprocess widget and the trainer agree
on the plan, its hash and its cache.

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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from napari_volseg.config import PlanSettings, Preset
from napari_volseg.errors import SettingsError, VolsegError
from napari_volseg.io.decathlon import Case, Task, training_split
from napari_volseg.validation import check_fields, setting, settings_from_dict, show

ANISOTROPY = 3.0
"""A task whose coarsest median spacing exceeds this multiple of its finest is anisotropic."""


@dataclass(frozen=True)
class Plan:
    """How volumes are brought to the network's grid. Spacing (mm) and shape are ``(z, y, x)``."""

    resample: str = setting(
        "spacing", "resample to target_spacing or resize to target_shape", choices=("spacing", "shape")
    )
    target_spacing: tuple[float, float, float] | None = setting(
        None, "the grid's spacing (z, y, x) in mm", min=0.0, min_exclusive=True, max=10_000.0
    )
    target_shape: tuple[int, int, int] | None = setting(None, "the grid's (z, y, x) shape in voxels", min=1, max=4096)
    normalization: str = setting(
        "zscore", "CT clip + foreground z-score, or per-volume z-score", choices=("ct", "zscore")
    )
    ct_clip: tuple[float, float] | None = setting(None, "CT intensity window (low, high)")
    ct_mean: float = setting(0.0, "CT foreground mean after clipping")
    ct_std: float = setting(1.0, "CT foreground standard deviation after clipping", min=0.0, min_exclusive=True)
    crop: bool = setting(True, "crop to the body / non-background box first")
    num_classes: int = setting(2, "classes including the background", min=2, max=256)
    in_channels: int = setting(1, "image channels (modalities)", min=1, max=256)
    zscore_region: str = setting(
        "volume",
        "a z-scored region of interest takes the whole volume's mean and std, or the box's own",
        choices=("volume", "box"),
    )
    """Where a z-score's mean and std come from when a region of interest is cut (a cascade's main
    net): ``"volume"``, the whole volume's crop, so an image looks the same to the net whatever box
    is cut from it; ``"box"``, the box itself (plans stored before this field: a locator box larger
    than the training boxes then brightened the heart's atrium by 0.2-0.5 SD)."""

    def __post_init__(self):
        check_fields(self, "plan")
        if self.resample == "spacing" and self.target_spacing is None:
            raise SettingsError("plan.target_spacing must be set when plan.resample is 'spacing'")
        if self.resample == "shape" and self.target_shape is None:
            raise SettingsError("plan.target_shape must be set when plan.resample is 'shape'")
        if self.ct_clip is not None and not self.ct_clip[0] < self.ct_clip[1]:
            raise SettingsError(f"plan.ct_clip must be (low, high) with low < high (got {show(self.ct_clip)})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        """A plan from checkpoint metadata; :class:`SettingsError` for a missing, unknown or bad value.
        Plans stored before ``zscore_region`` existed z-scored the box, and keep doing so."""
        if isinstance(d, Mapping):
            d = {"zscore_region": "box", **d}
        return settings_from_dict(cls, d, "plan")

    @property
    def hash(self) -> str:
        """Stable 12-hex digest of the plan: the disk cache's key."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=float).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


@dataclass(frozen=True)
class CTIntensities:
    """Foreground intensity statistics of CT training cases (HU): clip window, mean and std after clipping."""

    clip: tuple[float, float] = (-1024.0, 3071.0)
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class TaskStatistics:
    """The fingerprint a plan is computed from: per training case its spacing and extent (mm,
    ``(z, y, x)``, from the headers), and for CT the foreground intensities (``None`` when not measured)."""

    kind: str
    num_classes: int
    in_channels: int
    spacings: tuple[tuple[float, float, float], ...]
    extents_mm: tuple[tuple[float, float, float], ...]
    ct: CTIntensities | None = None

    @property
    def median_extents(self) -> np.ndarray:
        """The median ``(z, y, x)`` extent in mm of the cases' volumes."""
        return np.median(np.array(self.extents_mm), axis=0)

    @property
    def target_spacing(self) -> tuple[float, float, float]:
        """nnU-Net's target spacing: the median, except the coarse axis of an anisotropic task takes its 10th percentile."""
        spacings = np.array(self.spacings)
        target = np.median(spacings, axis=0)
        coarse = int(np.argmax(target))
        if target[coarse] / target.min() > ANISOTROPY:
            target[coarse] = np.percentile(spacings[:, coarse], 10)
        return tuple(float(s) for s in target)


def measures_intensities(task: Task, settings: PlanSettings) -> bool:
    """Whether plans of ``settings`` normalise with CT statistics (CT tasks resampled to a spacing)."""
    return task.kind == "ct" and settings.resample == "spacing"


def statistics(task: Task, cases: list[Case], intensities: bool = False) -> TaskStatistics:
    """Read the fingerprint of ``cases`` (headers; with ``intensities`` also every image and label)."""
    if not cases:
        raise VolsegError(f"task {task.name} has no training cases to plan from")
    geometries = [c.geometry() for c in cases]
    return TaskStatistics(
        kind=task.kind,
        num_classes=task.num_classes,
        in_channels=max(1, len(task.modalities)),
        spacings=tuple(tuple(float(s) for s in g.spacing_zyx) for g in geometries),
        extents_mm=tuple(
            tuple(float(n * s) for n, s in zip(g.shape_zyx, g.spacing_zyx, strict=True)) for g in geometries
        ),
        ct=ct_intensities(cases) if intensities else None,
    )


def ct_intensities(cases: list[Case], per_case: int = 20000, seed: int = 0) -> CTIntensities:
    """Foreground intensities of CT cases: (0.5, 99.5) percentiles, mean and std after clipping (a
    sparse label's unlabelled voxels are not foreground)."""
    rng = np.random.default_rng(seed)
    samples = []
    for case in cases:
        image, label = case.load()
        data = image.data if image.data.ndim == 3 else image.data[0]
        fg = data.astype(np.float32, copy=False)[(label.data > 0) & (label.data != case.unlabelled)]
        if fg.size:
            samples.append(rng.choice(fg, size=min(per_case, fg.size), replace=False))
    if not samples:
        return CTIntensities()
    values = np.concatenate(samples)
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    clipped = np.clip(values, lo, hi)
    return CTIntensities((lo, hi), float(clipped.mean()), float(clipped.std()))


def _scaled_spacing(settings: PlanSettings, stats: TaskStatistics) -> np.ndarray:
    spacing = np.array(settings.spacing if settings.spacing is not None else stats.target_spacing, dtype=float)
    return spacing * np.broadcast_to(np.asarray(settings.spacing_scale, dtype=float), (3,))


def make_plan(
    settings: PlanSettings, stats: TaskStatistics, extents_mm: tuple[float, float, float] | None = None
) -> Plan:
    """The plan of ``settings`` for a task with statistics ``stats``.

    ``settings.max_voxels`` coarsens the spacing until a region of the median volume's size (or of
    ``extents_mm``, a cascade's median region of interest) fits in that many voxels.
    """
    spacing_plan = settings.resample == "spacing"
    ct = stats.kind == "ct" and spacing_plan
    plan = Plan(
        resample=settings.resample,
        target_spacing=(1.0, 1.0, 1.0) if spacing_plan else None,
        target_shape=settings.shape,
        normalization="ct" if ct else "zscore",
        crop=settings.crop if spacing_plan else False,
        num_classes=stats.num_classes,
        in_channels=stats.in_channels,
        zscore_region=settings.zscore_region,
    )
    if spacing_plan:
        spacing = _scaled_spacing(settings, stats)
        if settings.max_voxels:
            extents = np.asarray(extents_mm, dtype=float) if extents_mm is not None else stats.median_extents
            voxels = float(np.prod(extents / spacing))
            if voxels > settings.max_voxels:
                spacing = spacing * (voxels / settings.max_voxels) ** (1.0 / 3.0)
        plan = replace(plan, target_spacing=tuple(round(float(s), 4) for s in spacing))
    if ct:
        if stats.ct is None:
            raise VolsegError("a CT plan needs the task's intensity statistics (statistics(..., intensities=True))")
        plan = replace(plan, ct_clip=stats.ct.clip, ct_mean=stats.ct.mean, ct_std=stats.ct.std)
    return plan


def needs_cascade(settings: PlanSettings, stats: TaskStatistics) -> bool:
    """Whether settings asking for a cascade get one: only when the task's median volume does not
    fit ``max_voxels`` at the task's own spacing (small volumes are segmented whole, at full resolution)."""
    if not settings.cascade or settings.resample != "spacing" or not settings.max_voxels:
        return False
    return float(np.prod(stats.median_extents / _scaled_spacing(settings, stats))) > settings.max_voxels


def locator_settings(settings: PlanSettings) -> PlanSettings:
    """The plan settings of a cascade's locator stage: the whole volume on a grid of ``locator_voxels``."""
    return replace(settings, cascade=False, max_voxels=settings.locator_voxels)


def whole_volume_settings(settings: PlanSettings, stats: TaskStatistics) -> PlanSettings:
    """The settings whole volumes are prepared with ahead of training: ``settings`` themselves, or
    for a cascade its locator's (the main stage's regions of interest are cut while training)."""
    return locator_settings(settings) if needs_cascade(settings, stats) else settings


def roi_extents(
    boxes: Mapping[str, tuple[tuple[int, int], ...]], spacings: Mapping[str, tuple[float, ...]]
) -> tuple[float, float, float]:
    """The median ``(z, y, x)`` extent in mm of the regions of interest of the cases in ``spacings``
    (``boxes`` in source voxels, by case id; a case without a box is left out)."""
    found = [k for k in spacings if boxes.get(k) is not None]
    extents = [[(b - a) * s for (a, b), s in zip(boxes[k], spacings[k], strict=True)] for k in found]
    return tuple(float(e) for e in np.median(extents, axis=0))


def stage_presets(preset: Preset) -> tuple[Preset, Preset]:
    """A cascade's locator and main-net presets: the locator's coarse plan settings, and the time (or epochs) split
    between the two by ``locator_fraction``."""
    s, t = preset.plan, preset.train
    frac = s.locator_fraction
    locator = replace(
        preset,
        plan=locator_settings(s),
        train=replace(t, minutes=t.minutes * frac if t.minutes else None, epochs=max(1, round(t.epochs * frac))),
    )
    main = replace(
        preset,
        train=replace(
            t, minutes=t.minutes * (1 - frac) if t.minutes else None, epochs=max(1, t.epochs - round(t.epochs * frac))
        ),
    )
    return locator, main


def time_share(preset: Preset, stage: str, cascade: bool) -> float:
    """The share of a run's time budget that ``stage`` (``"locator"`` or ``""``, the main net) gets."""
    if not cascade:
        return 1.0
    return preset.plan.locator_fraction if stage == "locator" else 1.0 - preset.plan.locator_fraction


@dataclass(frozen=True)
class RunPlan:
    """What a run of a preset on a task trains: one net, or a cascade of a locator and a main net."""

    cascade: bool
    plan: Plan
    """The plan whole volumes are prepared with (a cascade's: its locator's; the regions are cut while training)."""
    stages: tuple[tuple[str, Preset, float], ...]
    """``(stage, preset, time share)`` in order: ``("locator", ..., 0.2), ("", ..., 0.8)``, or ``("", preset, 1)``."""


def plan_run(task: Task, preset: Preset, split=None, stats: TaskStatistics | None = None) -> RunPlan:
    """The one planning entry point: from ``split``'s training cases (default: the preset's
    :func:`~napari_volseg.io.decathlon.training_split`), the cascade decision, the whole-volume plan and the stages
    with their presets and time shares. ``volseg preprocess``, the Preprocess tab and the trainer ask it."""
    if stats is None:
        split = split if split is not None else training_split(task, preset.train)
        stats = statistics(task, split.train, measures_intensities(task, preset.plan))
    cascade = needs_cascade(preset.plan, stats)
    plan = make_plan(whole_volume_settings(preset.plan, stats), stats)
    if not cascade:
        return RunPlan(False, plan, (("", preset, 1.0),))
    locator, main = stage_presets(preset)
    return RunPlan(
        True,
        plan,
        (("locator", locator, time_share(preset, "locator", True)), ("", main, time_share(preset, "", True))),
    )
