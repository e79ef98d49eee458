"""The per-viewer session shared by the dock widgets: task, open case, model, predictions, scores.

Plain Python with psygnal signals (napari's own event library), so widgets stay in sync without
knowing each other.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from psygnal import Signal

from napari_volseg import paths
from napari_volseg.engine.config import Preset, load_preset
from napari_volseg.errors import VolsegError
from napari_volseg.evaluate import CaseResult
from napari_volseg.io import decathlon


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
        self.preset: Preset = load_preset(paths.DEFAULT_PRESET)
        self.split: decathlon.Split | None = None
        self._workers: list = []

    def set_task(self, task: decathlon.Task) -> None:
        self.task = task
        self.results.clear()
        self.split = self._split()
        self.task_changed.emit(task)
        self.results_changed.emit()

    def set_preset(self, preset: Preset) -> None:
        """The preset the session trains with; its training settings decide the split."""
        self.preset = preset
        split = self._split()
        if split != self.split:
            self.split = split
            if self.task is not None:
                self.task_changed.emit(self.task)

    def _split(self) -> decathlon.Split | None:
        """The split :func:`~napari_volseg.io.decathlon.training_split` decides (None: the task cannot be split)."""
        if self.task is None:
            return None
        try:
            return decathlon.training_split(self.task, self.preset.train)
        except VolsegError:
            return None

    def split_of(self, case_id: str) -> str:
        if self.split is None:
            return "test" if self.task and any(c.id == case_id for c in self.task.test_cases) else "train"
        if any(c.id == case_id for c in self.split.test):
            return "held out"
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
