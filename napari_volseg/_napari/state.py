"""The per-viewer session shared by the dock widgets: task, open case, preset and plan, model, predictions, scores.

Plain Python with psygnal signals (napari's own event library), so widgets stay in sync without knowing each
other. Opening tasks, cases and dropped files runs in workers (:mod:`~napari_volseg._napari.loading`); the session
holds what they found.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psygnal import Signal

from napari_volseg import config
from napari_volseg.config import PlanSettings, Preset, list_presets
from napari_volseg.errors import VolsegError
from napari_volseg.evaluate import CaseResult
from napari_volseg.io import decathlon


@dataclass(frozen=True)
class CaseInfo:
    """A case's row in the Data table, from its header alone."""

    id: str
    shape: tuple[int, ...] | None
    spacing: tuple[float, ...] | None
    labelled: bool


class Session:
    task_changed = Signal(object)
    case_opened = Signal(str)
    checkpoint_changed = Signal(object)
    results_changed = Signal()
    preset_changed = Signal(object)
    """Another preset was chosen: the widgets show its plan and training settings."""
    plan_changed = Signal(object)
    """The plan settings were edited (Preprocess); Train trains with them."""
    status = Signal(str)
    """What the session's loaders are doing ("opening Task02_Heart…"), or "" when idle."""
    folder_offered = Signal(object)
    """A folder of scans without a task was dropped on this viewer: its Data dock offers "New task from images"."""

    def __init__(self, viewer=None):
        self._viewer = weakref.ref(viewer) if viewer is not None else lambda: None
        from napari_volseg._napari.responsive import prepare_event_loop, roomy_thread_pool

        if viewer is not None:
            prepare_event_loop(viewer)  # also sizes the pool
        else:
            roomy_thread_pool()
        self.task: decathlon.Task | None = None
        self.cases: list[CaseInfo] = []
        self.case_id: str | None = None
        self.checkpoint: Path | None = None
        self.split: decathlon.Split | None = None
        self.presets = list_presets()
        self.preset: Preset = self.presets[config.DEFAULT_PRESET]
        self.plan_edited = False
        """True once the Preprocess widget changed the chosen preset's plan settings."""
        self._results: dict[Path | None, dict[str, CaseResult]] = {}
        self.dropped_labels: dict[int, str] = {}
        """Class names of the model that predicted the dropped scans (no task open)."""
        self._workers: list = []
        self._loaders: list = []
        self.closed = False
        """True once the viewer's window has closed: layers still queued are not shown."""
        self._owners: dict = {}
        self.training = None
        """The training run in progress (``widgets.train.Training``), whichever Train dock started it: a dock opened
        while it runs shows it, with its chart and Stop."""
        self._layers_pending = 0
        """Chains of layers still being added (one per event-loop turn) after their reader finished."""
        self.showing: str | None = None
        """The case whose layers are being shown (added one per event-loop turn)."""
        self.offered: set[Path] = set()
        """Folders whose "New task from images" dialog is open (a drop of images/ and labels/ offers once)."""
        self.dropped: list[Path] = []
        """Files of a drop being collected: napari hands the reader one file at a time, all in one event-loop turn."""
        self.requests: dict[str, int] = {}
        """The latest open request of each kind (task, case): a loader whose request is stale drops its result."""
        self.prompts_used: dict[str, dict[str, int]] = {}
        """Prompts given per annotation layer name (clicks, boxes, scribbles), for the Annotate tab's edit report."""
        self.unsaved_work: Callable[[str | None], str | None] | None = None
        """Asked before a case's layers are replaced: given the case about to open (``None``: any case), one line
        saying what work that would lose, or ``None`` (set by the Annotate tab for unaccepted edits)."""

    @property
    def viewer(self):
        return self._viewer()

    # -- task, cases, results ------------------------------------------------------------------

    @property
    def results(self) -> dict[str, CaseResult]:
        """Predictions of the open task's cases (each task keeps its own: re-opening a task shows them again); with
        no task open, those of the scans dropped on the viewer."""
        return self._results.setdefault(Path(self.task.root).resolve() if self.task is not None else None, {})

    def label_names(self) -> dict[int, str]:
        """Class names of the results: the open task's, else those of the model that predicted the dropped scans."""
        if self.task is not None:
            return dict(self.task.labels)
        scored = {s.label: f"class {s.label}" for r in self.results.values() for s in r.scores}
        return {**scored, **self.dropped_labels}

    def set_task(self, task: decathlon.Task, cases: list[CaseInfo] | None = None) -> None:
        self.task = task
        self.cases = cases or [CaseInfo(c.id, None, None, c.label_path is not None) for c in task.cases]
        self.cases += [CaseInfo(c.id, None, None, False) for c in task.test_cases if c.id not in self.case_ids()]
        self.split = self._split()
        self.task_changed.emit(task)
        self.results_changed.emit()

    def case_ids(self) -> list[str]:
        return [c.id for c in self.cases]

    def _split(self) -> decathlon.Split | None:
        """The split :func:`~napari_volseg.io.decathlon.training_split` decides (None: the task cannot be split)."""
        if self.task is None:
            return None
        try:
            return decathlon.training_split(self.task, self.preset.train)
        except VolsegError:
            return None

    def _update_split(self) -> None:
        split = self._split()
        if split != self.split:
            self.split = split
            if self.task is not None:
                self.task_changed.emit(self.task)

    def split_of(self, case_id: str) -> str:
        if self.split is None:
            return "test" if self.task and any(c.id == case_id for c in self.task.test_cases) else "train"
        if any(c.id == case_id for c in self.split.test):
            return "held out"
        if any(c.id == case_id for c in self.split.val):
            return "validation"
        return "train" if any(c.id == case_id for c in self.split.train) else "test"

    def add_result(self, result: CaseResult) -> None:
        self.results[result.case] = result
        self.results_changed.emit()

    def forget_dropped(self, case: str) -> None:
        """A dropped scan's layers were deleted: its row goes from the table (no task open; a task's rows stay)."""
        if self.task is None and self.results.pop(case, None) is not None:
            self.results_changed.emit()

    def results_for_model(self, model: str) -> bool:
        """Make the open task's results one model's: another model's results are dropped (a table mixing two models
        would average them into one meaningless mean). Returns whether any were dropped."""
        results = self.results
        stale = [case for case, r in results.items() if r.model != model]
        for case in stale:
            del results[case]
        if stale:
            self.results_changed.emit()
        return bool(stale)

    def set_checkpoint(self, path: Path | None) -> None:
        self.checkpoint = path
        self.checkpoint_changed.emit(path)

    # -- the chosen preset (issue 10: what Preprocess sets is what Train trains) ------------------

    def choose_preset(self, name: str) -> None:
        """Start again from preset ``name`` (its plan and training settings)."""
        if name == self.preset.name and not self.plan_edited:
            return
        if self.plan_edited:  # the plan set in Preprocess goes with the old preset: say so (it went in silence)
            from napari.utils.notifications import show_info

            show_info(f"preset {name}: its own plan and training settings replace the plan set in Preprocess")
        self.preset = self.presets[name]
        self.plan_edited = False
        self._update_split()
        self.preset_changed.emit(self.preset)

    def set_preset(self, preset: Preset) -> None:
        """The preset the session trains with (Train's settings on Start); its training settings decide the split."""
        self.preset = preset
        self._update_split()

    def set_plan(self, settings: PlanSettings) -> None:
        """The plan settings the Preprocess widget shows; Train trains with them."""
        if settings == self.preset.plan:
            return
        self.preset = dataclasses.replace(self.preset, plan=settings)
        self.plan_edited = settings != self.presets[self.preset.name].plan
        self.plan_changed.emit(settings)

    # -- workers -------------------------------------------------------------------------------

    def track(self, worker, owner=None, loader: bool = False) -> None:
        """Keep a running worker so that closing the viewer (or the widget ``owner``) stops it; ``loader``: one of
        the session's own readers (tasks, cases, dropped files)."""
        for running in (self._workers, self._loaders) if loader else (self._workers,):
            running.append(worker)
            worker.finished.connect(lambda w=worker, r=running: r.remove(w) if w in r else None)
        if owner is not None:
            owner.destroyed.connect(lambda *_, w=worker: stop_worker(w))
            self._owners[worker] = owner
            worker.finished.connect(lambda w=worker: self._owners.pop(w, None))

    def owned_by(self, widgets) -> list:
        """The running workers that one of ``widgets`` (or a widget inside one, such as Predict's model chooser) owns:
        they stop when it goes."""
        return [
            w
            for w, owner in self._owners.items()
            if any(owner is widget or widget.isAncestorOf(owner) for widget in widgets)
        ]

    def busy_loading(self) -> bool:
        """True while a task, a case or dropped files are being read, or layers are still being added: a case's image
        and ground truth, a prediction's prediction and error layers."""
        return bool(self._loaders) or self._layers_pending > 0

    def adding_layers(self) -> Callable[[], None]:
        """Count a chain of layer additions as loading until the returned ``ended()`` is called (once)."""
        self._layers_pending += 1
        done = []

        def ended() -> None:
            if not done:
                done.append(True)
                self._layers_pending -= 1

        return ended

    def shutdown(self, *args) -> None:
        """Stop every running worker, training included (the viewer's window is closing)."""
        self.closed = True
        for worker in list(self._workers):
            stop_worker(worker)


def stop_worker(worker) -> None:
    """Ask ``worker`` to end: its job's own Stop first (a trainer writes its model), then the worker's quit."""
    stop = getattr(worker, "volseg_stop", None)
    if stop:
        stop()
    try:
        worker.quit()
    except RuntimeError:  # its Qt side is already gone
        pass
