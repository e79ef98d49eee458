"""Self-describing checkpoints: one ``.safetensors`` file, never unpickled.

Tensors: the model's state (``model.*``), a cascade's locator net (``locator.*``) and, for
resumable checkpoints, the optimizer's (``optim.*``). Metadata (JSON strings): format tag, model
config, preprocessing plan, label names, the preset as trained (its effective patch and batch),
training history, step/epoch, the training cases' ids, package version, the post-processing decision
(``postprocess``, :mod:`napari_volseg.postprocess`). Loading gives typed values back (a
:class:`~napari_volseg.config.Preset`, a :class:`~napari_volseg.planning.Plan`), built by
the same functions that read preset files, so their checks apply to checkpoints too. Writes go to
a temporary file that is renamed into place, so an interrupted save never leaves a broken
checkpoint behind.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from napari_volseg import __version__
from napari_volseg import postprocess as post
from napari_volseg.config import Preset, preset_from_dict
from napari_volseg.errors import SettingsError, VolsegError
from napari_volseg.models import ModelConfig, UNet3D, build_model
from napari_volseg.models.vgg3d import VGG3D, VGG3DConfig
from napari_volseg.outputs import atomic_write
from napari_volseg.planning import Plan
from napari_volseg.validation import short

FORMAT = "napari-volseg/1"


class CheckpointError(VolsegError):
    """A file is not a usable napari-volseg checkpoint."""


@dataclass
class Locator:
    """The coarse stage of a cascade: a small net on a coarse grid that finds the region of interest."""

    model_config: ModelConfig
    plan: Plan
    state: dict[str, torch.Tensor]
    patch: tuple[int, int, int]
    margin_mm: float
    one_piece: bool = False
    """The foreground of every fully labelled training case was one connected piece: the region of interest is then
    the box of the largest piece the locator finds, not of every piece over a tenth of it (a stray piece 60 voxels
    from a heart's atrium stretched its box, and the main net, never trained on such a box, marked much of it).
    Checkpoints written before it was decided read as False."""
    max_extent_mm: tuple[float, float, float] | None = None
    """The largest region of interest (z, y, x, mm) the main net may be shown: 1.5 times the largest training box.
    A locator that marks the whole chest (early weights) would otherwise send the main net over the whole scan at
    full resolution (15× the time). None in checkpoints written before it: no cap."""

    def build_model(self) -> UNet3D:
        return build_net(self.model_config, self.state)

    def meta(self) -> str:
        info = {
            "model_config": self.model_config.to_dict(),
            "plan": self.plan.to_dict(),
            "patch": list(self.patch),
            "margin_mm": self.margin_mm,
            "one_piece": self.one_piece,
        }
        if self.max_extent_mm is not None:
            info["max_extent_mm"] = list(self.max_extent_mm)
        return json.dumps(info)


def build_net(config: ModelConfig | VGG3DConfig, state: dict[str, torch.Tensor]) -> UNet3D | VGG3D:
    """The network of ``config`` holding ``state``; one-line :class:`CheckpointError` if they do not fit."""
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint weights do not fit its architecture ({first})") from exc
    return model


@dataclass
class Checkpoint:
    model_config: ModelConfig
    plan: Plan
    labels: dict[int, str]
    state: dict[str, torch.Tensor]
    preset: Preset = field(default_factory=lambda: Preset(name=""))
    """The preset as trained: ``preset.train.patch_size`` and ``batch_size`` are the effective ones
    (patches shrink to small volumes, batches grow to small patches)."""
    history: list[dict] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    best_dice: float = float("nan")
    task: str = ""
    version: str = ""
    optimizer: dict | None = None
    path: Path | None = None
    locator: Locator | None = None
    postprocess: post.PostProcess = field(default_factory=post.PostProcess)
    """What :class:`~napari_volseg.engine.infer.Predictor` does to every prediction, decided on validation."""
    train_cases: list[str] = field(default_factory=list)
    """Ids of the cases the weights were trained on (fine-tuning samples the others more often)."""
    started_from: str = ""
    """The model a warm start began from (``msd-heart``); empty: from scratch (or unrecorded)."""
    interactive: dict | None = None
    """A promptable model's settings (:mod:`napari_volseg.interactive.net`: grid, region sizes, channels, what it
    was trained on); None for a task's segmentation model."""

    def build_model(self) -> UNet3D:
        return build_net(self.model_config, self.state)

    def as_locator(self, margin_mm: float) -> Locator:
        """This (coarse) checkpoint as the locator stage of a cascade."""
        return Locator(self.model_config, self.plan, self.state, self.preset.train.patch_size, float(margin_mm))


def save(
    path: str | os.PathLike,
    model: torch.nn.Module,
    plan: Plan,
    labels: dict[int, str],
    *,
    preset: Preset | None = None,
    history: list[dict] | None = None,
    step: int = 0,
    epoch: int = 0,
    best_dice: float = float("nan"),
    task: str = "",
    optimizer: torch.optim.Optimizer | None = None,
    locator: Locator | None = None,
    postprocess: post.PostProcess | None = None,
    train_cases: list[str] | None = None,
    started_from: str = "",
    interactive: dict | None = None,
    train_digests: list[str] | None = None,
) -> Path:
    """Write a checkpoint atomically; ``optimizer`` makes it resumable."""
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_config": json.dumps(model.config.to_dict()),
        "plan": json.dumps(plan.to_dict()),
        "labels": json.dumps({str(k): v for k, v in labels.items()}),
        "preset": json.dumps(preset.to_dict() if preset is not None else {}),
        "history": json.dumps(history or []),
        "step": str(step),
        "epoch": str(epoch),
        "best_dice": json.dumps(best_dice),
        "task": task,
        "version": __version__,
        "train_cases": json.dumps(list(train_cases or [])),
    }
    if train_digests:  # the training scans' file digests: a training case dropped under another name is known
        meta["train_digests"] = json.dumps(sorted(train_digests))
    if started_from:
        meta["started_from"] = started_from
    if interactive is not None:
        meta["interactive"] = json.dumps(interactive)
    if postprocess is not None:
        meta[post.METADATA_KEY] = post.to_metadata(postprocess)
    if locator is not None:
        tensors.update({f"locator.{k}": v.detach().cpu().clone() for k, v in locator.state.items()})
        meta["locator"] = locator.meta()
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for key, value in values.items():
                value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().reshape(-1).contiguous()
        meta["optim_groups"] = json.dumps(state["param_groups"])
        meta["optim_shapes"] = json.dumps(
            {
                f"{i}.{k}": list(v.shape) if isinstance(v, torch.Tensor) else []
                for i, s in state["state"].items()
                for k, v in s.items()
            }
        )
    return write_atomic(path, tensors, meta)


def write_atomic(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    """Write ``tensors`` with string ``meta`` as one safetensors file: a temporary file renamed into place."""
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_meta(path: str | os.PathLike) -> dict[str, str]:
    """A safetensors file's metadata strings from its header alone (no tensor is read); {} if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return {}


def read_tensors(
    path: str | os.PathLike, fmt: str = FORMAT, what: str = "napari-volseg checkpoint"
) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a safetensors file whose ``format`` tag is ``fmt`` (``what`` names it in errors)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a checkpoint file (.safetensors)")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            found = meta.get("format", "")
            if found != fmt:
                if found.startswith("napari-volseg"):
                    raise CheckpointError(
                        f"{path.name} is a napari-volseg checkpoint of another kind ({found}), not a {what}"
                    )
                raise CheckpointError(f"{path.name} is a safetensors file but not a {what}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable checkpoint (truncated or not safetensors: {short(str(exc), 120)})"
        ) from exc
    return meta, tensors


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; one-line :class:`CheckpointError` for anything that is not one of ours."""
    path = Path(path)
    meta, tensors = read_tensors(path)
    try:
        model_config = ModelConfig(**json.loads(meta["model_config"]))
        plan = Plan.from_dict(json.loads(meta["plan"]))
        labels = {int(k): v for k, v in json.loads(meta["labels"]).items()}
        preset = _preset(json.loads(meta.get("preset", "{}")))
        postprocess = _postprocess(meta.get(post.METADATA_KEY), labels)
        train_cases = json.loads(meta.get("train_cases", "[]"))
        if not isinstance(train_cases, list) or not all(isinstance(c, str) for c in train_cases):
            raise TypeError("train_cases must be a list of case ids")
        locator = None
        if "locator" in meta:
            info = json.loads(meta["locator"])
            locator = Locator(
                model_config=ModelConfig(**info["model_config"]),
                plan=Plan.from_dict(info["plan"]),
                state={k[len("locator.") :]: v for k, v in tensors.items() if k.startswith("locator.")},
                patch=tuple(int(p) for p in info["patch"]),
                margin_mm=float(info["margin_mm"]),
                one_piece=_flag(info.get("one_piece", False), "locator.one_piece"),
                max_extent_mm=_extent(info.get("max_extent_mm")),
            )
    except SettingsError as exc:  # the settings it predicts with, checked as a preset file's would be
        raise CheckpointError(f"{path.name}: {exc}") from exc
    except (KeyError, TypeError, ValueError, VolsegError) as exc:
        raise CheckpointError(f"{path.name} has unreadable metadata ({short(str(exc), 120)})") from exc
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optimizer = None
    if "optim_groups" in meta:
        shapes = json.loads(meta["optim_shapes"])
        per_param: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                per_param.setdefault(int(index), {})[name] = value.reshape(shapes[f"{index}.{name}"])
        optimizer = {"state": per_param, "param_groups": json.loads(meta["optim_groups"])}
    return Checkpoint(
        model_config=model_config,
        plan=plan,
        labels=labels,
        state=state,
        preset=preset,
        history=json.loads(meta.get("history", "[]")),
        step=int(meta.get("step", 0)),
        epoch=int(meta.get("epoch", 0)),
        best_dice=json.loads(meta.get("best_dice", "NaN")),
        task=meta.get("task", ""),
        version=meta.get("version", ""),
        optimizer=optimizer,
        path=path,
        locator=locator,
        postprocess=postprocess,
        train_cases=train_cases,
        started_from=meta.get("started_from", ""),
        interactive=_interactive(meta.get("interactive")),
    )


def _interactive(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"unreadable interactive settings ({short(str(exc), 80)})") from None
    if not isinstance(info, dict):
        raise CheckpointError("unreadable interactive settings (not a mapping)")
    return info


def _extent(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    extent = tuple(float(v) for v in value)
    if len(extent) != 3 or not all(math.isfinite(v) and v > 0 for v in extent):
        raise ValueError(f"locator.max_extent_mm must be three positive lengths, not {value!r}")
    return extent


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be true or false")
    return value


def _preset(data: Any) -> Preset:
    """The preset of a checkpoint's metadata, every setting checked; the first checkpoints may hold
    only some of its sections (or none): what is missing takes the defaults of ``config.py``,
    and keys another version wrote are skipped."""
    if not isinstance(data, dict):
        raise SettingsError("preset must be a mapping of settings")
    named = {"name": "", **data}
    try:
        return preset_from_dict(named, where="preset", strict=False)
    except SettingsError as exc:  # "preset: train.lr ..." -> "train.lr ...": the section names the field
        raise SettingsError(str(exc).removeprefix("preset: ")) from None


def _postprocess(text: str | None, labels: dict[int, str]) -> post.PostProcess:
    """The post-processing record of a checkpoint's metadata, its classes checked against the labels."""
    decision = post.from_metadata(text)
    unknown = [k for k in decision.largest_component if k not in labels]
    if unknown:
        raise SettingsError(f"postprocess.largest_component names classes the model does not have ({unknown})")
    return decision


def read_preset(path: str | os.PathLike) -> Preset | None:
    """The preset a checkpoint was trained with, from its header alone (no tensor is read); None if unreadable."""
    meta = read_meta(path)
    if meta.get("format") != FORMAT:
        return None
    try:
        return _preset(json.loads(meta.get("preset", "{}")))
    except (ValueError, TypeError, VolsegError):
        return None


def mirror_tta(path: str | os.PathLike) -> tuple[bool, bool]:
    """Whether mirror test-time augmentation can help the model at ``path`` (it was trained mirrored), and whether
    its preset predicts with it, from the header alone."""
    preset = read_preset(path)
    mirrored = preset is not None and bool(preset.train.mirror_axes)
    return mirrored, mirrored and preset.infer.tta
