"""The per-viewer session shared by the dock widgets: task, open case, model, predictions, scores.

Plain Python with psygnal signals (napari's own event library), so widgets stay in sync without
knowing each other.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from psygnal import Signal

from napari_volseg import metrics
from napari_volseg.io import decathlon, nifti


@dataclass
class CaseResult:
    """A prediction of one case and its scores against the ground truth (if any)."""

    case: str
    labels: np.ndarray
    geometry: nifti.Geometry
    scores: list[metrics.ClassScore] = field(default_factory=list)


class Session:
    task_changed = Signal(object)
    case_opened = Signal(str)
    checkpoint_changed = Signal(object)
    results_changed = Signal()

    def __init__(self):
        self.task: decathlon.Task | None = None
        self.case_id: str | None = None
        self.checkpoint: Path | None = None
        self.results: dict[str, CaseResult] = {}
        self.split: decathlon.Split | None = None
        self._workers: list = []

    def set_task(self, task: decathlon.Task, val_cases: int | None = None) -> None:
        self.task = task
        self.results.clear()
        try:
            self.split = task.split(val_cases=val_cases) if len(task.cases) >= 2 else None
        except Exception:
            self.split = None
        self.task_changed.emit(task)
        self.results_changed.emit()

    def split_of(self, case_id: str) -> str:
        if self.split is None:
            return "test" if self.task and any(c.id == case_id for c in self.task.test_cases) else "train"
        return "validation" if any(c.id == case_id for c in self.split.val) else "train"

    def set_checkpoint(self, path: Path | None) -> None:
        self.checkpoint = path
        self.checkpoint_changed.emit(path)

    def add_result(self, result: CaseResult) -> None:
        self.results[result.case] = result
        self.results_changed.emit()

    def track(self, worker) -> None:
        """Keep a running worker so that closing the viewer can stop it."""
        self._workers.append(worker)
        worker.finished.connect(lambda w=worker: self._workers.remove(w) if w in self._workers else None)

    def shutdown(self, *args) -> None:
        """Stop every running worker (the viewer is closing)."""
        for worker in list(self._workers):
            stop = getattr(worker, "volseg_stop", None)
            if stop:
                stop()
            worker.quit()


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer) -> Session:
    """The one session of a viewer, created on first use; closing the viewer stops its workers."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = Session()
        _SESSIONS[viewer] = session
        try:
            viewer.window._qt_window.destroyed.connect(session.shutdown)
        except (AttributeError, RuntimeError):
            pass
    return session
