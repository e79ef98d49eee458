"""Which zoo model a training run starts from (a warm start): the one owner of that choice for the Train tab and
``volseg train --start-from``.

A model fits a task where its network reads as many channels as the task has and is the preset's network (its head
may have other classes: that layer starts fresh). By default a run starts from the closest fitting model: one
trained on a task of the same name first, then one of the same modality; a task no model shares a modality with
starts from scratch (the CT phantom with the shipped MRI models). Any fitting model may be chosen by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from napari_volseg.config import Preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.trainer import check_warm_start
from napari_volseg.errors import VolsegError
from napari_volseg.io.decathlon import Task
from napari_volseg.models.unet3d import ModelConfig
from napari_volseg.zoo.registry import installed_models, resolve, shipped_models

SCRATCH = "scratch"
AUTO = "auto"


@dataclass(frozen=True)
class Candidate:
    name: str
    modality: str
    task: str
    """The name of the task it was trained on (``dataset.json``'s, as its checkpoint records it)."""


def _modality(text: str) -> str:
    """``MRI (T1-weighted)`` → ``MRI``."""
    return text.split("(")[0].strip().upper()


def candidates(task: Task, preset: Preset) -> list[Candidate]:
    """The shipped and installed models that fit ``task`` with ``preset``'s network, closest first."""
    found = []
    for entry in shipped_models() + installed_models():
        if entry.path is None or entry.path.suffix != ".safetensors":
            continue
        meta = ckpt.read_meta(entry.path)  # the header alone: this list is built on the GUI thread
        try:
            config = ModelConfig(**json.loads(meta["model_config"]))
            check_warm_start(config, preset, task, entry.name)
        except (VolsegError, KeyError, TypeError, ValueError):  # no fit, or not a segmentation checkpoint
            continue
        card = entry.card
        found.append(Candidate(entry.name, _modality(card.modality) if card else "", meta.get("task", "")))
    mine = _modality(task.modalities.get(0, ""))
    return sorted(found, key=lambda c: (c.task != task.name, c.modality != mine, c.name))


def default_start(task: Task, preset: Preset) -> str:
    """The model a run starts from when nobody chose: the closest fitting one of the task's modality, else scratch."""
    mine = _modality(task.modalities.get(0, ""))
    fitting = [c for c in candidates(task, preset) if c.task == task.name or (mine and c.modality == mine)]
    return fitting[0].name if fitting else SCRATCH


def start_from(choice: str | None, task: Task, preset: Preset) -> tuple[ckpt.Checkpoint | None, str]:
    """The checkpoint and name to start from for ``choice`` (``auto``/None, ``scratch``, a model name or a file)."""
    name = default_start(task, preset) if choice in (None, "", AUTO) else choice
    if name == SCRATCH:
        return None, ""
    loaded = ckpt.load(resolve(name))
    check_warm_start(loaded, preset, task, name)
    return loaded, str(name)
