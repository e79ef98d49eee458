"""Whether a model's predictions can be a task's labels: the same classes and channels. Asked before Annotate ranks
or predicts with a model (its suggestions would be refused at Accept) and before a fine-tune."""

from __future__ import annotations

import os

from napari_volseg.engine.checkpoint import read_meta
from napari_volseg.io.decathlon import Task
from napari_volseg.zoo import registry


def unfit_for(model: str | os.PathLike, task: Task) -> str | None:
    """Why ``model``'s predictions cannot become ``task``'s labels (other classes or channels), from its header
    alone, else None: its suggestions would be refused at Accept, and it cannot be fine-tuned on the task."""
    import json

    try:
        meta = read_meta(registry.resolve(model))
        plan = json.loads(meta["plan"])
        labels = {int(k): v for k, v in json.loads(meta["labels"]).items()}
        return unfit(int(plan["num_classes"]), int(plan["in_channels"]), labels, task)
    except Exception:  # noqa: BLE001 - not found, or not a segmentation checkpoint of ours: opening it says why
        return None


def unfit(num_classes: int, in_channels: int, labels: dict[int, str], task: Task) -> str | None:
    channels = max(1, len(task.modalities))
    if (num_classes, in_channels) == (task.num_classes, channels):
        return None
    theirs = ", ".join(name for value, name in sorted(labels.items()) if value > 0)
    ours = ", ".join(name for value, name in sorted(task.labels.items()) if value > 0)
    return (
        f"the model segments {num_classes - 1} structure(s) ({theirs}) in {in_channels}-channel scans; task "
        f"{task.name} has {task.num_classes - 1} ({ours}) in {channels}-channel scans: its predictions cannot be "
        "this task's labels (make the task with the model's classes, or annotate from scratch)"
    )
