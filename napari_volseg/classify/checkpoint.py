"""Classifier checkpoints: one ``.safetensors`` file written and read by the engine's checkpoint machinery.

Tensors: the network's state (``model.*``). Metadata (JSON strings): format tag, model config, class names,
training preset, data description, history, step/epoch, test accuracy, package version. Never unpickled; written
atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from napari_volseg import __version__
from napari_volseg.engine.checkpoint import CheckpointError, build_net, read_tensors, write_atomic
from napari_volseg.errors import VolsegError
from napari_volseg.models.vgg3d import VGG3D, VGG3DConfig

FORMAT = "napari-volseg-classifier/1"
WHAT = "napari-volseg classifier checkpoint"


@dataclass
class ClassifierCheckpoint:
    model_config: VGG3DConfig
    classes: tuple[str, ...]
    state: dict[str, torch.Tensor]
    preset: dict = field(default_factory=dict)
    data: str = ""
    history: list[dict] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    accuracy: float = float("nan")
    version: str = ""
    path: Path | None = None

    def build_model(self) -> VGG3D:
        return build_net(self.model_config, self.state).eval()


def save(
    path: str | os.PathLike,
    model: VGG3D,
    classes: tuple[str, ...],
    *,
    preset: dict | None = None,
    data: str = "",
    history: list[dict] | None = None,
    step: int = 0,
    epoch: int = 0,
    accuracy: float = float("nan"),
) -> Path:
    """Write a classifier checkpoint atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_config": json.dumps(model.config.to_dict()),
        "classes": json.dumps(list(classes)),
        "preset": json.dumps(preset or {}),
        "data": data,
        "history": json.dumps(history or []),
        "step": str(step),
        "epoch": str(epoch),
        "accuracy": json.dumps(accuracy),
        "version": __version__,
    }
    return write_atomic(path, tensors, meta)


def load(path: str | os.PathLike) -> ClassifierCheckpoint:
    """Read a classifier checkpoint; one-line :class:`CheckpointError` for anything else."""
    path = Path(path)
    meta, tensors = read_tensors(path, FORMAT, WHAT)
    try:
        return ClassifierCheckpoint(
            model_config=VGG3DConfig(**json.loads(meta["model_config"])),
            classes=tuple(json.loads(meta["classes"])),
            state={k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
            preset=json.loads(meta.get("preset", "{}")),
            data=meta.get("data", ""),
            history=json.loads(meta.get("history", "[]")),
            step=int(meta.get("step", 0)),
            epoch=int(meta.get("epoch", 0)),
            accuracy=json.loads(meta.get("accuracy", "NaN")),
            version=meta.get("version", ""),
            path=path,
        )
    except (KeyError, TypeError, ValueError, VolsegError) as exc:
        raise CheckpointError(f"{path.name} has unreadable metadata ({exc})") from exc
