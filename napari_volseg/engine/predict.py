"""Predict and score the cases of a task: the one worker body of the Predict widget, the demo and the benchmarks.

:func:`predict_cases` loads each case, segments it with a checkpoint (the locator first for a
cascade), scores it against its ground truth when it has one (Dice, HD95, volumes, the FP/FN
error map), and yields a
:class:`~napari_volseg.engine.events.CasePredicted` holding a :class:`~napari_volseg.evaluate.CaseResult`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from napari_volseg import metrics
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.config import InferConfig
from napari_volseg.engine.events import CasePredicted
from napari_volseg.engine.infer import Predictor
from napari_volseg.evaluate import CaseResult
from napari_volseg.io.decathlon import Case, Task


def model_id(checkpoint: ckpt.Checkpoint | str | os.PathLike) -> str:
    """Which model made a result: its checkpoint file, resolved (two ``best.safetensors`` in different folders are
    two models); a name the zoo cannot resolve stays as given."""
    if isinstance(checkpoint, ckpt.Checkpoint):
        return str(Path(checkpoint.path).resolve()) if checkpoint.path else ""
    try:
        from napari_volseg.zoo import registry

        return str(registry.resolve(checkpoint).resolve())
    except Exception:  # noqa: BLE001 - predicting reports a model that cannot be found
        return str(checkpoint)


def trained_on_name(checkpoint: str | os.PathLike, case: str) -> bool | None:
    """Whether a scan named ``case`` (dropped without a task) is one the model trained on, by name alone: the
    checkpoint lists its training cases by name; None where it lists none (nobody can say)."""
    try:
        from napari_volseg.zoo import registry

        cases = json.loads(ckpt.read_meta(registry.resolve(checkpoint)).get("train_cases", "[]"))
    except Exception:  # noqa: BLE001 - a model that cannot say marks nothing; predicting reports its own errors
        return None
    return case in cases if cases else None


def trained_cases(checkpoint: ckpt.Checkpoint | str | os.PathLike, task: Task) -> set[str]:
    """The cases of ``task`` that the model was trained on, as its checkpoint lists them (none for another task's
    model, a MONAI bundle, or a checkpoint that does not say)."""
    if isinstance(checkpoint, ckpt.Checkpoint):
        meta_task, cases = checkpoint.task, checkpoint.train_cases
    else:
        try:
            from napari_volseg.zoo import registry

            meta = ckpt.read_meta(registry.resolve(checkpoint))
            meta_task, cases = meta.get("task", ""), json.loads(meta.get("train_cases", "[]"))
        except Exception:  # noqa: BLE001 - a model that cannot say marks no case; predicting reports its own errors
            return set()
    if meta_task and meta_task != task.name:
        return set()
    return {c for c in cases if isinstance(c, str)}


def predict_cases(
    checkpoint: ckpt.Checkpoint | str | os.PathLike,
    task: Task,
    cases: Sequence[Case],
    config: InferConfig | None = None,
    **overrides,
) -> Iterator[CasePredicted]:
    """Predict ``cases`` of ``task`` one by one; labels on each source grid, Dice / HD95 / volumes per class.

    ``checkpoint``: a loaded checkpoint, or what ``volseg predict --model`` takes (a model name, a
    checkpoint file, an imported MONAI bundle). ``config`` and ``overrides`` (``tta=``, ``device=`` ...) as :class:`~napari_volseg.engine.infer.Predictor`
    takes them: unset, the checkpoint's preset decides. The model is released when the generator ends.
    """
    if isinstance(checkpoint, ckpt.Checkpoint):
        predictor = Predictor(checkpoint, config, **overrides)
    else:  # a name, a checkpoint file or an imported MONAI bundle: the zoo picks the backend
        from napari_volseg.zoo.backend import open_model

        predictor = open_model(checkpoint, config, **overrides)
    trained = trained_cases(checkpoint, task)
    model = model_id(checkpoint)
    try:
        for i, case in enumerate(cases):
            image, truth = case.load()
            started = time.perf_counter()
            labels = predictor.predict(image).labels
            seconds = time.perf_counter() - started
            result = CaseResult(
                case=case.id,
                labels=labels,
                geometry=image.geometry,
                seconds=seconds,
                trained_on=case.id in trained,
                model=model,
            )
            if truth is not None:
                result.scores = metrics.score_case(labels, truth.data, task.num_classes, truth.spacing)
                result.errors = metrics.error_map(labels, truth.data)
            yield CasePredicted(done=i + 1, total=len(cases), result=result)
    finally:
        predictor.release()
