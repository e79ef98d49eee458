"""Model versions compared on the same cases: each version's mean Dice over the task's fully labelled cases that no
listed version trained on (by case name or scan digest), so v001, v002 and the shipped model they came from read on
one scale. Their validation figures are not comparable: each is on its own split, and a shipped model trained
without one has none. Scores are kept beside the versions (``comparison.json``) and computed again only for a
version file that changed, or when the common cases change."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from napari_volseg import metrics
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.provenance import Provenance
from napari_volseg.errors import VolsegError
from napari_volseg.events import Progress
from napari_volseg.io import volumes
from napari_volseg.io.decathlon import Case, Task
from napari_volseg.outputs import atomic_write

SCORES = "comparison.json"


@dataclass(frozen=True)
class Comparison:
    """Each version's mean Dice over the same ``cases``."""

    scores: dict[Path, float]
    cases: list[str]


def common_cases(task: Task, models: Sequence[str | os.PathLike]) -> list[Case]:
    """The task's fully labelled cases that none of ``models`` trained on (by case name, or by its scan's digest)."""
    seen = [Provenance.read(m) for m in models]
    names = set().union(*(p.trained_in(task.name) for p in seen)) if seen else set()
    digests = set().union(*(p.train_digests for p in seen)) if seen else set()
    return [
        c
        for c in task.cases
        if not c.sparse and c.id not in names and (not digests or volumes.file_digest(c.image_path) not in digests)
    ]


def _cached(folder: Path, ids: list[str]) -> dict:
    try:
        data = json.loads((folder / SCORES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("scores", {}) if isinstance(data, dict) and data.get("cases") == ids else {}


def compare(
    task: Task, models: Sequence[str | os.PathLike], folder: str | os.PathLike
) -> Iterator[Progress | Comparison]:
    """Yield :class:`Progress` per case predicted, then the :class:`Comparison` over the common cases (one line of
    error when there are none). Scores already in ``folder/comparison.json`` for the same cases are reused."""
    folder = Path(folder)
    cases = common_cases(task, models)
    if not [c for c in task.cases if not c.sparse]:
        raise VolsegError(
            f"{task.name} has no fully labelled case to compare the versions on: Accept a corrected case first"
        )
    if not cases:
        raise VolsegError(
            f"every labelled case of {task.name} trained one of these versions: none is left to compare them on "
            "(keep a labelled case out of training, e.g. the validation cases of the first fine-tune)"
        )
    ids = [c.id for c in cases]
    scores = _cached(folder, ids)
    todo = [Path(m) for m in models if scores.get(str(Path(m).resolve()), {}).get("mtime") != Path(m).stat().st_mtime]
    done, total = 0, len(todo) * len(cases)
    for model in todo:
        predictor = Predictor(model)
        try:
            dice = []
            for case in cases:
                image, truth = case.load()
                labels = predictor.predict(image).labels
                dice.append(metrics.mean_dice(metrics.score_case(labels, truth.data, task.num_classes, truth.spacing)))
                done += 1
                yield Progress(done, total, f"{model.stem}: {case.id}")
        finally:
            predictor.release()
        scores[str(model.resolve())] = {"mtime": model.stat().st_mtime, "dice": float(sum(dice) / len(dice))}
    if todo and folder.is_dir():
        text = json.dumps({"cases": ids, "scores": scores}, indent=1)
        atomic_write(folder / SCORES, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    yield Comparison({Path(m): scores[str(Path(m).resolve())]["dice"] for m in models}, ids)
