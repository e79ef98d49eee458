"""Self-describing checkpoints: one ``.safetensors`` file, never unpickled.

Tensors: the model's state (``model.*``), a cascade's locator net (``locator.*``) and, for
resumable checkpoints, the optimizer's (``optim.*``). Metadata (JSON strings): format tag, model
config, preprocessing plan, label names, preset, training history, step/epoch, package version,
the post-processing decided on validation (``postprocess``, :mod:`napari_volseg.postprocess`). Writes go to a temporary file that is
renamed into place, so an interrupted save never leaves a broken checkpoint behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from napari_volseg import __version__
from napari_volseg import postprocess as post
from napari_volseg.errors import VolsegError
from napari_volseg.models import ModelConfig, UNet3D
from napari_volseg.preprocess import Plan

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

    def build_model(self) -> UNet3D:
        return _build(self.model_config, self.state)

    def meta(self) -> str:
        return json.dumps(
            {
                "model_config": self.model_config.to_dict(),
                "plan": self.plan.to_dict(),
                "patch": list(self.patch),
                "margin_mm": self.margin_mm,
            }
        )


def _build(config: ModelConfig, state: dict[str, torch.Tensor]) -> UNet3D:
    model = UNet3D(config)
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
    preset: dict = field(default_factory=dict)
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

    def build_model(self) -> UNet3D:
        return _build(self.model_config, self.state)

    def as_locator(self, margin_mm: float) -> Locator:
        """This (coarse) checkpoint as the locator stage of a cascade."""
        patch = tuple((self.preset.get("train") or {}).get("patch_size") or (64, 64, 64))
        return Locator(self.model_config, self.plan, self.state, patch, float(margin_mm))


def save(
    path: str | os.PathLike,
    model: torch.nn.Module,
    plan: Plan,
    labels: dict[int, str],
    *,
    preset: dict | None = None,
    history: list[dict] | None = None,
    step: int = 0,
    epoch: int = 0,
    best_dice: float = float("nan"),
    task: str = "",
    optimizer: torch.optim.Optimizer | None = None,
    locator: Locator | None = None,
    postprocess: post.PostProcess | None = None,
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
        "preset": json.dumps(preset or {}),
        "history": json.dumps(history or []),
        "step": str(step),
        "epoch": str(epoch),
        "best_dice": json.dumps(best_dice),
        "task": task,
        "version": __version__,
    }
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; one-line :class:`CheckpointError` for anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path.name} is a safetensors file but not a napari-volseg checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable checkpoint (truncated or not safetensors: {exc})"
        ) from exc
    try:
        model_config = ModelConfig(**json.loads(meta["model_config"]))
        plan = Plan.from_dict(json.loads(meta["plan"]))
        labels = {int(k): v for k, v in json.loads(meta["labels"]).items()}
        postprocess = post.from_metadata(meta.get(post.METADATA_KEY))
        locator = None
        if "locator" in meta:
            info = json.loads(meta["locator"])
            locator = Locator(
                model_config=ModelConfig(**info["model_config"]),
                plan=Plan.from_dict(info["plan"]),
                state={k[len("locator.") :]: v for k, v in tensors.items() if k.startswith("locator.")},
                patch=tuple(int(p) for p in info["patch"]),
                margin_mm=float(info["margin_mm"]),
            )
    except (KeyError, TypeError, ValueError, VolsegError) as exc:
        raise CheckpointError(f"{path.name} has unreadable metadata ({exc})") from exc
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
        preset=json.loads(meta.get("preset", "{}")),
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
    )


def read_preset(path: str | os.PathLike) -> dict:
    """The preset a checkpoint was trained with, from its header alone (no tensor is read); {} if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return json.loads(meta.get("preset", "{}")) if meta.get("format") == FORMAT else {}
    except (SafetensorError, OSError, ValueError):
        return {}


def locator_path(best: Path) -> Path:
    """Where a cascade run keeps its locator stage's own (best) checkpoint."""
    best = Path(best)
    name = best.name[: -len(".safetensors")] if best.name.endswith(".safetensors") else best.name
    return best.with_name(f"{name}.locator.safetensors")


def last_path(best: Path) -> Path:
    """Where the resumable 'last' checkpoint of a run whose best checkpoint is ``best`` lives."""
    best = Path(best)
    name = best.name[: -len(".safetensors")] if best.name.endswith(".safetensors") else best.name
    return best.with_name(f"{name}.last.safetensors")
