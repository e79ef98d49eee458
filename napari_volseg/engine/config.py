"""The single source of defaults: dataclasses for planning, training and inference, and named presets.

Widgets and CLI flags are built from these; checkpoints store them. Presets are YAML files in
``napari_volseg/presets/`` (``training/presets`` links there) holding only what differs from the
defaults below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from napari_volseg.errors import VolsegError

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"


@dataclass(frozen=True)
class PlanSettings:
    """How to derive a :class:`~napari_volseg.preprocess.Plan` from a task.

    ``resample="spacing"``: the task's median spacing (or ``spacing`` mm, ``(z, y, x)``) multiplied by
    ``spacing_scale``; ``resample="shape"``: every volume resized to ``shape`` ``(z, y, x)``.
    """

    resample: str = "spacing"
    spacing: tuple[float, float, float] | None = None
    spacing_scale: float = 1.0
    shape: tuple[int, int, int] | None = None
    crop: bool = True
    max_voxels: int | None = None
    """If set, coarsen the spacing (isotropically, never refining) until the task's median volume
    fits in this many voxels: large scans get a CPU-sized grid, small ones keep their resolution."""
    cascade: bool = False
    """Coarse-to-fine, for tasks whose volumes do not fit ``max_voxels`` at their own spacing: a
    locator net trained on a coarse grid of ``locator_voxels`` finds the region of interest, and the
    main net is trained and run only inside it (grown by ``roi_margin_mm``), where ``max_voxels``
    then buys up to the task's full resolution. Smaller tasks ignore it."""
    locator_voxels: int = 150_000
    locator_fraction: float = 0.2
    """The locator's share of the training time (or epochs)."""
    roi_margin_mm: float = 20.0
    zscore_region: str = "volume"
    """A z-scored region of interest takes the mean and std of the whole volume (``"volume"``) or of
    the box itself (``"box"``, as before): see :attr:`napari_volseg.preprocess.Plan.zscore_region`."""


@dataclass(frozen=True)
class TrainConfig:
    """Training loop settings. ``patch_size`` is ``(z, y, x)`` voxels on the plan grid."""

    epochs: int = 100
    minutes: float | None = None
    iterations_per_epoch: int = 50
    batch_size: int = 2
    batch_voxels: int | None = None
    """If set, small patches come in larger batches: the batch grows past ``batch_size`` until it
    holds about this many voxels (at most 16 patches), as nnU-Net sizes batches to its patches."""
    patch_size: tuple[int, int, int] = (64, 64, 64)
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "poly"
    step_every: int = 100
    step_gamma: float = 0.1
    loss: str = "dicece"
    alpha: float = 0.5
    fg_fraction: float = 0.33
    augment: bool = True
    mirror_axes: tuple[int, ...] = ()
    """Axes (0 = z, 1 = y, 2 = x) randomly mirrored when augmenting. Off by default: left-right
    mirroring erases the anatomy's lateral asymmetry (spleen left, liver right), which the net uses."""
    val_every: int = 5
    val_cases: int | None = None
    split: str = "seeded"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True
    sync_bn: bool = False
    """Under torchrun on GPUs: synchronise BatchNorm statistics across ranks."""
    loader_threads: int | None = None
    """Threads that cut and augment the next batches while the device trains on this one; ``None``:
    4 on a GPU, 0 on the CPU (where they would only take cores from the convolutions)."""
    channels_last: bool = False
    """Train in ``channels_last_3d`` memory format. On the CPU oneDNN's backward convolutions at 8-16
    channels are far faster in it (a cpu-lean step at 64³: 2.0x, hippocampus-sized batches 1.3x, both
    measured side by side on shared cores); it can also speed up cuDNN convolutions under AMP."""
    compile: bool = False
    """Wrap the training forward pass in ``torch.compile`` (GPU; no gain measured on the CPU)."""


@dataclass(frozen=True)
class InferConfig:
    """Sliding-window inference settings."""

    overlap: float = 0.25
    sw_batch_size: int = 2
    """Windows per forward pass. On 2 CPU cores, 2 windows per pass instead of 1 halved the time of a
    heart MRI (3.1 -> 1.5 s) and cut a hippocampus volume's 3.4x (0.53 -> 0.16 s); 4 gained no more."""
    tta: bool = False
    device: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str = ""
    model: str = "cpu-lean"
    plan: PlanSettings = field(default_factory=PlanSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    cost: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **train_overrides) -> Preset:
        """A copy with training settings replaced (``None`` values are ignored)."""
        changes = {k: v for k, v in train_overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise VolsegError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))


def _build(cls, data: dict | None, where: str):
    data = dict(data or {})
    names = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise VolsegError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key, value in data.items():
        if isinstance(value, list):
            data[key] = tuple(value)
    return cls(**data)


def preset_from_dict(d: dict, where: str = "preset") -> Preset:
    known = {"name", "description", "model", "cost", "plan", "train", "infer"}
    unknown = set(d) - known
    if unknown:
        raise VolsegError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if "name" not in d:
        raise VolsegError(f"{where}: missing key 'name'")
    try:
        return Preset(
            name=str(d["name"]),
            description=str(d.get("description", "")),
            model=str(d.get("model", "cpu-lean")),
            cost=str(d.get("cost", "")),
            plan=_build(PlanSettings, d.get("plan"), f"{where}: plan"),
            train=_build(TrainConfig, d.get("train"), f"{where}: train"),
            infer=_build(InferConfig, d.get("infer"), f"{where}: infer"),
        )
    except TypeError as exc:
        raise VolsegError(f"{where}: {exc}") from exc


def list_presets() -> dict[str, Preset]:
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        preset = load_preset(path)
        presets[preset.name] = preset
    return presets


def load_preset(name_or_path: str | Path) -> Preset:
    """A preset by name (``fast-cpu``, ``seed-exp2-heart-ce``, ...) or from a YAML file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            names = ", ".join(p.stem for p in sorted(PRESET_DIR.glob("*.yaml")))
            raise VolsegError(f"unknown preset {name_or_path!r}; choose from {names}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise VolsegError(f"cannot read preset {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise VolsegError(f"preset {path} must be a YAML mapping")
    return preset_from_dict(data, where=path.name)
