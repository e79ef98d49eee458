"""Predict and score the cases of a task: the one worker body of the Predict widget, the demo and the benchmarks.

:func:`predict_cases` loads each case, segments it with an opened model (the locator first for a
cascade), scores it against its ground truth when it has one (Dice, HD95, volumes, the FP/FN
error map), and yields a
:class:`~napari_volseg.events.CasePredicted` holding a :class:`~napari_volseg.evaluate.CaseResult`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from napari_volseg import metrics
from napari_volseg.config import InferConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.infer import Prediction, Predictor
from napari_volseg.engine.provenance import Provenance
from napari_volseg.errors import VolsegError
from napari_volseg.evaluate import CaseResult
from napari_volseg.events import CasePredicted
from napari_volseg.io.decathlon import Case, Task
from napari_volseg.io.geometry import Volume


class SegmentationModel(Protocol):
    """What the engine and the faces need of an opened model (``zoo.backend.open_model`` opens one)."""

    labels: dict[int, str]
    mirror_axes: tuple[int, ...]
    provenance: Provenance
    in_channels: int

    def predict(self, image: Volume, keep_probabilities: bool = False) -> Prediction: ...

    def release(self) -> None: ...


def predict_cases(
    model: SegmentationModel | ckpt.Checkpoint,
    task: Task,
    cases: Sequence[Case],
    config: InferConfig | None = None,
    **overrides,
) -> Iterator[CasePredicted]:
    """Predict ``cases`` of ``task`` one by one; labels on each source grid, Dice / HD95 / volumes per class.

    ``model``: an opened model (``zoo.backend.open_model`` opens names, files and MONAI bundles) or a loaded
    checkpoint, with ``config`` and ``overrides`` (``tta=``, ``device=`` ...) as
    :class:`~napari_volseg.engine.infer.Predictor` takes them (unset: the checkpoint's preset decides). Each result
    says whether the model trained on its case. The model is released when the generator ends.
    """
    predictor = Predictor(model, config, **overrides) if isinstance(model, ckpt.Checkpoint) else model
    provenance = predictor.provenance
    trained = provenance.trained_in(task.name)
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
                model=provenance.model,
            )
            if truth is not None:
                result.scores = metrics.score_case(labels, truth.data, task.num_classes, truth.spacing)
                result.errors = metrics.error_map(labels, truth.data)
            yield CasePredicted(done=i + 1, total=len(cases), result=result)
    finally:
        predictor.release()


def predict_volume(
    model: SegmentationModel, image: Volume, case: str, truth: np.ndarray | None = None, digest: str | None = None
) -> CaseResult:
    """Segment one scan opened without a task (a dropped file) on its own grid, scored against ``truth`` where one
    of the same shape is given. Whether the model trained on it is judged by ``case``, its name (la_003 dropped is
    msd-heart's la_003) or by its file's ``digest`` (the same scan renamed); the model stays open."""
    started = time.perf_counter()
    labels = model.predict(image).labels
    seconds = time.perf_counter() - started
    provenance = model.provenance
    result = CaseResult(
        case,
        labels,
        image.geometry,
        seconds=seconds,
        trained_on=provenance.trained_on(case, digest),
        model=provenance.model,
    )
    if truth is not None and truth.shape == labels.shape:
        classes = max(int(max(labels.max(), truth.max())) + 1, len(model.labels or {}))
        result.scores = metrics.score_case(labels, truth, classes, image.geometry.spacing_zyx)
        result.errors = metrics.error_map(labels, truth)
    return result


def channels_to_predict(
    in_channels: int, name: str, channels: Sequence[np.ndarray], chosen: int | None, selected: bool
) -> np.ndarray:
    """The image a model reading ``in_channels`` channels segments from a scan of several volumes (a 4D file:
    channels or time points) opened as one layer per volume (``channels``): all of them stacked ``(c, z, y, x)``
    where the model reads that many; the ``chosen`` one where it reads one and the user ``selected`` it; else one
    line saying what to do (a single-channel model used channel [1] of a 4D scan in silence)."""
    n = len(channels)
    if n == 1 and in_channels == 1:
        return np.asarray(channels[0], dtype=np.float32)
    if in_channels == n:
        return np.stack([np.asarray(c, dtype=np.float32) for c in channels])
    if in_channels == 1 and chosen is not None and selected:
        return np.asarray(channels[chosen], dtype=np.float32)
    if in_channels == 1:
        raise VolsegError(
            f"{name} holds {n} volumes (channels or time points) and the model reads one: select the layer of the "
            f"one to segment ('{name} [0]' to '{name} [{n - 1}]'), then Predict"
        )
    raise VolsegError(f"the model reads {in_channels} channels and {name} holds {n}: open a scan of {in_channels}")
