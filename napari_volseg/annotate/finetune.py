"""Fine-tuning: continue from a checkpoint on all of a task's labelled cases, with the checkpoint's plan.

The validation cases are the checkpoint's own (from its history) while they stay fully labelled, so
the validation Dice of successive model versions is measured on the same cases (a checkpoint trained
without validation is fine-tuned without it, as the latest weights); every other labelled
case trains, and the cases the checkpoint was not trained on (the newly accepted ones) are drawn
:attr:`~napari_volseg.config.FinetuneConfig.recent_weight` times as often.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_volseg.annotate.fit import unfit
from napari_volseg.config import DEFAULT_PRESET, FinetuneConfig, load_preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.trainer import Trainer
from napari_volseg.errors import VolsegError
from napari_volseg.io.decathlon import Split, Task
from napari_volseg.zoo import registry


def validation_ids(checkpoint: ckpt.Checkpoint) -> list[str]:
    """The cases the checkpoint was validated on (its latest validation record), in recorded order."""
    for record in reversed(checkpoint.history):
        if record.get("val_cases"):
            return list(record["val_cases"])
    return []


def finetuning_split(checkpoint: ckpt.Checkpoint, task: Task) -> tuple[Split, list[str]]:
    """``(split, recent ids)``: the checkpoint's validation cases that are still fully labelled validate,
    all other labelled cases train, and ``recent`` names those the checkpoint has not been trained on."""
    if not task.cases:
        raise VolsegError(
            f"task {task.name} has no labelled cases to fine-tune on: Accept a corrected case first (its edits join "
            "training then)"
        )
    wanted = set(validation_ids(checkpoint))
    val = [c for c in task.cases if c.id in wanted and not c.sparse]
    val_ids = {c.id for c in val}
    train = [c for c in task.cases if c.id not in val_ids]
    if not train:
        raise VolsegError(f"task {task.name} has no labelled case left to train on besides the validation cases")
    known = set(checkpoint.train_cases)
    recent = [c.id for c in train if known and c.id not in known]
    return Split(train=train, val=val), recent


def finetuner(
    model: str | os.PathLike | ckpt.Checkpoint,
    task: Task,
    out: str | os.PathLike,
    config: FinetuneConfig | None = None,
    **train_overrides,
) -> Trainer:
    """A :class:`Trainer` that fine-tunes ``model`` (a checkpoint, its file or a model name such as
    ``msd-heart``) on ``task`` for ``config.minutes`` and writes ``out`` (a new file: the checkpoint
    it starts from is never overwritten). ``train_overrides`` (``device=``, ``threads=``, ...) change
    single training settings."""
    config = config or FinetuneConfig()
    checkpoint = model if isinstance(model, ckpt.Checkpoint) else ckpt.load(registry.resolve(model))
    out = Path(out)
    if checkpoint.path is not None and out.resolve() == Path(checkpoint.path).resolve():
        raise VolsegError(f"--out {out.name} is the checkpoint being fine-tuned; name a new file")
    plan = checkpoint.plan
    reason = unfit(plan.num_classes, plan.in_channels, checkpoint.labels, task)
    if reason:
        raise VolsegError(reason)
    base = checkpoint.preset  # as trained: its patch and batch
    # the time budget ends the run and drives the poly schedule; epochs no longer limit it
    # fine-tunes keep their latest weights (average_last 1): checkpoint averaging was not measured for them
    preset = base.with_overrides(
        minutes=config.minutes, epochs=10**6, lr=base.train.lr * config.lr_scale, average_last=1
    )
    preset = preset.with_overrides(**train_overrides)
    split, recent = finetuning_split(checkpoint, task)
    weights = {case_id: config.recent_weight for case_id in recent}
    return Trainer(task, preset, out, split=split, init_from=checkpoint, case_weights=weights or None)


def next_version_trainer(checkpoint: str | os.PathLike | None, task: Task, out: Path, minutes: float) -> Trainer:
    """The run that makes the annotation loop's next model version: fine-tuning the model in use on every labelled
    case, or, with no model yet, a first model trained from the default preset (sparse cases train, one case too)."""
    if checkpoint is not None:
        return finetuner(checkpoint, task, out, FinetuneConfig(minutes=minutes))
    return Trainer(task, load_preset(DEFAULT_PRESET).with_overrides(minutes=minutes), out)
