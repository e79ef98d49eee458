"""The single source of defaults: dataclasses for planning, training and inference, and named presets.

Widgets and CLI flags are built from these; checkpoints store them. Presets are YAML files in
``napari_volseg/presets/`` (``training/presets`` links there) holding only what differs from the
defaults below.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from napari_volseg.errors import SettingsError, VolsegError
from napari_volseg.validation import check_fields, setting, settings_from_dict, short

PRESET_DIR = Path(__file__).resolve().parent / "presets"


DEVICES = ("auto", "cpu", "cuda", "mps")
"""Every device a setting may name; :func:`napari_volseg.engine.device.available_devices` narrows it to this machine's."""
LOSSES = ("ce", "dice", "dicece")
"""The training losses by name (:func:`napari_volseg.losses.make_loss` builds them)."""
EXPORT_FORMATS = ("onnx", "torchscript", "bioimageio", "monai-bundle")
"""What :func:`napari_volseg.zoo.export.export` writes (``volseg export --format``)."""
DEFAULT_PRESET = "fast-cpu"
"""The training preset every face starts from (CLI ``--preset``, Train and Preprocess widgets, demo, benches)."""
VAL_FRACTION = 0.2
"""The share of labelled cases held out for validation when the training settings name no count
(:func:`napari_volseg.io.decathlon.training_split` applies it)."""


@dataclass(frozen=True)
class PlanSettings:
    """How to derive a :class:`~napari_volseg.planning.Plan` from a task.

    ``resample="spacing"``: the task's median spacing (or ``spacing`` mm, ``(z, y, x)``) multiplied by
    ``spacing_scale``; ``resample="shape"``: every volume resized to ``shape`` ``(z, y, x)``.
    """

    resample: str = setting(
        "spacing", "resample to a target spacing (mm) or resize every volume to one shape", choices=("spacing", "shape")
    )
    spacing: tuple[float, float, float] | None = setting(
        None, "target spacing (z, y, x) in mm; empty: the task's median", min=0.0, min_exclusive=True, max=1000.0
    )
    spacing_scale: float = setting(
        1.0, "multiplies the target spacing (above 1: a coarser, faster grid)", min=0.0, min_exclusive=True, max=100.0
    )
    shape: tuple[int, int, int] | None = setting(
        None, "the fixed (z, y, x) shape in voxels when resample is 'shape'", min=1, max=4096
    )
    crop: bool = setting(True, "crop each volume to the body (CT) or the non-background box (MRI) first")
    max_voxels: int | None = setting(
        None, "coarsen the spacing until the task's median volume fits this many voxels", min=1000, max=10**10
    )
    """If set, coarsen the spacing (isotropically, never refining) until the task's median volume
    fits in this many voxels: large scans get a CPU-sized grid, small ones keep their resolution."""
    cascade: bool = setting(False, "coarse-to-fine: a locator net finds the organ, the main net segments its box")
    """Coarse-to-fine, for tasks whose volumes do not fit ``max_voxels`` at their own spacing: a
    locator net trained on a coarse grid of ``locator_voxels`` finds the region of interest, and the
    main net is trained and run only inside it (grown by ``roi_margin_mm``), where ``max_voxels``
    then buys up to the task's full resolution. Smaller tasks ignore it."""
    locator_voxels: int = setting(150_000, "voxels of the cascade locator's coarse grid", min=1000, max=10**9)
    locator_fraction: float = setting(
        0.2,
        "the cascade locator's share of the training time",
        min=0.0,
        min_exclusive=True,
        max=1.0,
        max_exclusive=True,
    )
    """The locator's share of the training time (or epochs)."""
    roi_margin_mm: float = setting(20.0, "margin (mm) around the located region of interest", min=0.0, max=1000.0)
    zscore_region: str = setting(
        "volume",
        "a z-scored region of interest takes the whole volume's mean and std, or the box's own",
        choices=("volume", "box"),
    )
    """See :attr:`napari_volseg.planning.Plan.zscore_region` (``"box"``: the normalisation before it)."""

    def __post_init__(self):
        check_fields(self, "plan")
        if self.resample == "shape" and self.shape is None:
            raise SettingsError("plan.shape must be set when plan.resample is 'shape'")


@dataclass(frozen=True)
class TrainConfig:
    """Training loop settings. ``patch_size`` is ``(z, y, x)`` voxels on the plan grid."""

    epochs: int = setting(100, "epochs to train (a time budget may end the run sooner)", min=1, max=10**7)
    minutes: float | None = setting(
        None, "wall-clock training budget in minutes; empty: no limit", min=0.0, min_exclusive=True, max=10**6
    )
    iterations_per_epoch: int = setting(50, "training steps per epoch", min=1, max=10**7)
    batch_size: int = setting(2, "patches per training step", min=1, max=1024)
    batch_voxels: int | None = setting(
        None, "grow the batch (up to 16 patches) until it holds about this many voxels", min=1, max=10**10
    )
    """If set, small patches come in larger batches: the batch grows past ``batch_size`` until it
    holds about this many voxels (at most 16 patches), as nnU-Net sizes batches to its patches."""
    patch_size: tuple[int, int, int] = setting((64, 64, 64), "training patch (z, y, x) in voxels", min=1, max=1024)
    lr: float = setting(1e-3, "Adam's learning rate", min=0.0, min_exclusive=True, max=10.0)
    weight_decay: float = setting(0.0, "Adam's weight decay", min=0.0, max=1.0)
    schedule: str = setting("poly", "learning-rate schedule", choices=("poly", "step", "constant"))
    step_every: int = setting(100, "epochs between learning-rate steps (schedule 'step')", min=1, max=10**7)
    step_gamma: float = setting(
        0.1, "learning-rate factor at each step (schedule 'step')", min=0.0, min_exclusive=True, max=1.0
    )
    loss: str = setting("dicece", "loss: cross-entropy, soft Dice, or alpha*Dice + (1-alpha)*CE", choices=LOSSES)
    alpha: float = setting(0.5, "weight of Dice in the 'dicece' loss", min=0.0, max=1.0)
    fg_fraction: float = setting(0.33, "share of patches centred on foreground", min=0.0, max=1.0)
    augment: bool = setting(True, "random rotations, scaling and intensity changes")
    mirror_axes: tuple[int, ...] = setting((), "axes (0 = z, 1 = y, 2 = x) randomly mirrored", min=0, max=2)
    """Axes (0 = z, 1 = y, 2 = x) randomly mirrored when augmenting. Off by default: left-right
    mirroring erases the anatomy's lateral asymmetry (spleen left, liver right), which the net uses."""
    augment_intensity: str = setting(
        "basic",
        "intensity augmentation: scale, shift and noise, or also gamma, blur and low resolution (nnU-Net's)",
        choices=("basic", "strong"),
    )
    """``basic``: intensity scale/shift and Gaussian noise. ``strong`` adds nnU-Net's gamma (inverted too),
    Gaussian blur and simulated low resolution (MONAI's ``RandAdjustContrast``, ``RandGaussianSmooth``,
    ``RandSimulateLowResolution``)."""
    deep_supervision: int = setting(
        0,
        "decoder levels below the top whose own 1x1x1 heads the loss also trains (nnU-Net's deep supervision)",
        min=0,
        max=8,
    )
    """Deep supervision: the loss also scores the logits of this many lower decoder levels (half, quarter ...
    resolution; weights 1, 0.5, 0.25, ...). Their heads are trained and kept in the checkpoint; prediction uses
    the full-resolution head only. Applies to new models (a fine-tune keeps its base model's heads)."""
    ema: float = setting(
        0.0, "validate and save a moving average of the weights with this decay per step (0: off)", min=0.0, max=0.9999
    )
    """Validate and save an exponential moving average of the weights (decay per step; 0: the raw weights). The
    resumable last checkpoint keeps the raw weights (a resumed run restarts the average from them)."""
    val_every: int = setting(5, "epochs between validations", min=1, max=10**7)
    average_last: int = setting(
        1, "without validation: the model averages the weights of this many last saves", min=1, max=16
    )
    """Without validation cases (nothing to select on), the model is the average of the weights at the last
    ``average_last`` saves (every ``val_every`` epochs, and the end): checkpoint averaging. A cascade's locator is
    not averaged (only the main net was measured). On held-out cases (bench/accuracy.py) averaging the last 2 was
    never worse than the last weights alone in 4 step-budget runs (2 tasks x 2 splits, +0.001 to +0.015), and within
    0.001 either way in 3 runs by the clock."""
    val_cases: int | None = setting(
        None,
        "cases held out for validation (0: none, the last weights, averaged by average_last, are the model); empty: a fifth",
        min=0,
        max=10**6,
    )
    test_cases: int = setting(
        0, "labelled cases held out from training and validation alike, for an honest score", min=0, max=10**6
    )
    split: str = setting("seeded", "train/validation split", choices=("seeded", "seed-report"))
    seed: int = setting(0, "random seed: same seed, same run", min=0, max=2**32 - 1)
    device: str = setting("auto", "device to train on", choices=DEVICES)
    threads: int | None = setting(None, "CPU threads; empty: every core", min=1, max=1024)
    amp: bool = setting(True, "mixed precision on CUDA")
    sync_bn: bool = setting(False, "synchronise BatchNorm across GPUs under torchrun")
    """Under torchrun on GPUs: synchronise BatchNorm statistics across ranks."""
    loader_threads: int | None = setting(
        None, "threads preparing the next batches; empty: 4 on a GPU, 0 on the CPU", min=0, max=64
    )
    """Threads that cut and augment the next batches while the device trains on this one; ``None``:
    4 on a GPU, 0 on the CPU (where they would only take cores from the convolutions)."""
    channels_last: bool = setting(False, "train in channels_last_3d memory format (faster on CPU and cuDNN)")
    """Train in ``channels_last_3d`` memory format. On the CPU oneDNN's backward convolutions at 8-16
    channels are far faster in it (a cpu-lean step at 64³: 2.0x, hippocampus-sized batches 1.3x, both
    measured side by side on shared cores); it can also speed up cuDNN convolutions under AMP."""
    compile: bool = setting(False, "wrap the training forward pass in torch.compile (GPU)")
    """Wrap the training forward pass in ``torch.compile`` (GPU; no gain measured on the CPU)."""

    def __post_init__(self):
        check_fields(self, "train")


@dataclass(frozen=True)
class InferConfig:
    """Sliding-window inference settings."""

    overlap: float = setting(0.25, "overlap of neighbouring windows", min=0.0, max=1.0, max_exclusive=True)
    sw_batch_size: int = setting(2, "windows per forward pass", min=1, max=1024)
    """Windows per forward pass. On 2 CPU cores, 2 windows per pass instead of 1 halved the time of a
    heart MRI (3.1 -> 1.5 s) and cut a hippocampus volume's 3.4x (0.53 -> 0.16 s); 4 gained no more."""
    tta: bool = setting(False, "average over mirrorings along the axes the model was trained mirrored on")
    device: str = setting("auto", "device to predict on", choices=DEVICES)
    threads: int | None = setting(None, "CPU threads; empty: every core", min=1, max=1024)

    def __post_init__(self):
        check_fields(self, "infer")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a checkpoint on a task's labelled cases (the annotation loop)."""

    minutes: float = setting(2.0, "fine-tuning time in minutes", min=0.0, min_exclusive=True, max=10**6)
    recent_weight: float = setting(
        3.0, "how many times as often newly accepted cases are drawn", min=0.0, min_exclusive=True, max=1000.0
    )
    """Cases the checkpoint was not trained on (newly accepted ones) are drawn this many times as often."""
    lr_scale: float = setting(0.5, "the checkpoint's learning rate times this", min=0.0, min_exclusive=True, max=10.0)
    """The checkpoint preset's learning rate times this: continuing from trained weights, a full-size
    first step would undo part of what they learned. A judgement, not a measured optimum."""

    def __post_init__(self):
        check_fields(self, "finetune")


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
        """A copy with training settings replaced (``None`` values are ignored); each is checked
        as a preset's would be (:class:`SettingsError`)."""
        return self.with_train({k: v for k, v in train_overrides.items() if v is not None})

    def with_train(self, changes: dict) -> Preset:
        """A copy with the training settings in ``changes`` replaced, None included (``--minutes none``: no limit);
        each is checked as a preset's would be (:class:`SettingsError`)."""
        unknown = set(changes) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise SettingsError(f"unknown training setting(s): {short(', '.join(map(repr, sorted(unknown))))}")
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))


def preset_from_dict(d: dict, where: str = "preset", *, strict: bool = True) -> Preset:
    """A preset from a mapping (a YAML file, checkpoint metadata); every setting checked.

    ``strict=False`` skips keys this version does not know (a checkpoint from another version).
    Raises :class:`SettingsError` prefixed with ``where``.
    """
    if not isinstance(d, dict):
        raise SettingsError(f"{where} must be a mapping of settings")
    unknown = set(map(str, d)) - {f.name for f in fields(Preset)}
    if unknown and strict:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if "name" not in d:
        raise SettingsError(f"{where}: missing key 'name'")
    try:
        return Preset(
            name=str(d["name"]),
            description=str(d.get("description") or ""),
            model=str(d.get("model", "cpu-lean")),
            cost=str(d.get("cost") or ""),
            plan=settings_from_dict(PlanSettings, d.get("plan"), "plan", strict=strict),
            train=settings_from_dict(TrainConfig, d.get("train"), "train", strict=strict),
            infer=settings_from_dict(InferConfig, d.get("infer"), "infer", strict=strict),
        )
    except SettingsError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def list_presets() -> dict[str, Preset]:
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        preset = load_preset(path)
        presets[preset.name] = preset
    return presets


class _PresetLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as the number YAML 1.2 says it is (YAML 1.1: a string)."""


_PresetLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"preset {path.name} is not valid YAML{where}: {short(problem)}"


def load_preset(name_or_path: str | Path) -> Preset:
    """A preset by name (``fast-cpu``, ``seed-exp2-heart-ce``, ...) or from a YAML file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            names = ", ".join(p.stem for p in sorted(PRESET_DIR.glob("*.yaml")))
            raise VolsegError(f"unknown preset {name_or_path!r}; choose from {names}")
    if not path.is_file():
        raise VolsegError(f"no preset file {path}" if not path.exists() else f"preset {path} is not a file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_PresetLoader)
    except UnicodeDecodeError as exc:
        raise VolsegError(f"preset {path.name} is not a YAML text file ({exc.reason})") from exc
    except OSError as exc:
        raise VolsegError(f"cannot read preset {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise VolsegError(_yaml_error(path, exc)) from exc
    if not isinstance(data, dict):
        raise VolsegError(f"preset {path.name} must be a YAML mapping (name:, plan:, train:, infer:)")
    return preset_from_dict(data, where=path.name)
