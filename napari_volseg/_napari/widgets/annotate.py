"""Annotate: which case next, predict it, correct it with napari's brush, accept, fine-tune, repeat. Only translation
between the user and :mod:`napari_volseg.annotate`, whose work runs in workers; cases open through the session. The
annotation is a napari Labels layer (``<case> annotation``); the task's unlabelled value (255) shows as a grey veil.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QLabel, QTableWidgetItem, QVBoxLayout, QWidget

from napari_volseg import events as ev
from napari_volseg import paths
from napari_volseg._napari import loading, workers
from napari_volseg._napari.layers import annotation_colors
from napari_volseg._napari.loading import case_layers, session_for
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import button_row, fit_columns, listen, make_table, set_labels
from napari_volseg._napari.widgets.versions import VersionsPanel
from napari_volseg.annotate import accept as accepting
from napari_volseg.annotate import sparse
from napari_volseg.annotate.edits import EditStats, accept_report, edit_stats
from napari_volseg.annotate.fit import unfit_for
from napari_volseg.io.new_task import DEFAULT_UNLABELLED

NO_ANNOTATION = "no annotation open: Predict or Annotate from scratch first"
NO_MODEL = "no model yet: choose one (Train tab) or Train from annotations"


class AnnotateWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = self.writer = None
        """The running rank, predict or training job; the running accept or undo (one of each at a time)."""
        self.ranking: list = []
        self.case_id: str | None = None
        """The case whose annotation layer is open."""
        self.suggested: np.ndarray | None = None
        """The annotation as it was opened (the model's suggestion): edits are counted against it."""
        self.accepted: list[accepting.Accepted] = []
        self.last_edits: EditStats | None = None
        """The edits of the last accepted case."""

        layout = QVBoxLayout(self)
        self.model_label = QLabel("model: none")
        self.model_label.setWordWrap(True)
        layout.addWidget(self.model_label)
        # what to do next (or why not) under the model, in view: at the bottom it was cut at 1366 x 768
        self.status = QLabel("open a task (Data tab)")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        heading = QLabel("<b>Cases to annotate</b>: unlabelled, then sparse; the most uncertain first once ranked")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        self.cases = make_table(("case", "uncertainty", "predicted mL"), min_height=90)
        layout.addWidget(self.cases, 2)
        row, (self.rank_button, self.predict_button) = button_row("Rank by uncertainty", "Predict")
        layout.addLayout(row)
        row, (self.scratch_button, self.unlabelled_button) = button_row("Annotate from scratch", "Paint unlabelled")
        layout.addLayout(row)
        row, (self.finish_button, self.accept_button, self.undo_button) = button_row(
            "Finish slice", "Accept", "Undo accept"
        )
        layout.addLayout(row)
        self.edits_label = QLabel("")
        self.edits_label.setWordWrap(True)
        layout.addWidget(self.edits_label)
        self.models = VersionsPanel(self)
        self.versions, self.minutes = self.models.table, self.models.minutes
        self.train_button, self.stop_button = self.models.train_button, self.models.stop_button
        layout.addWidget(self.models, 1)
        self._tips = {self.finish_button: "mark the rest of the current axial slice as background"}
        self._tips[self.models.compare_button] = self.models.compare_button.toolTip()

        self.rank_button.clicked.connect(self.rank)
        self.predict_button.clicked.connect(lambda: self.predict(self._case_or_say_why()))
        self.scratch_button.clicked.connect(lambda: self.open_case(self._case_or_say_why(), predict=False))
        self.cases.cellDoubleClicked.connect(lambda r, c: self.predict(self.cases.item(r, 0).text()))
        self.unlabelled_button.clicked.connect(self.paint_unlabelled)
        self.finish_button.clicked.connect(self.finish_slice)
        self.accept_button.clicked.connect(self.accept)
        self.undo_button.clicked.connect(self.undo)
        self.stop_button.clicked.connect(self.stop)
        listen(self, self.session.task_changed, lambda task: self.refresh())
        listen(self, self.session.checkpoint_changed, lambda path: self.refresh())
        listen(self, self.viewer.layers.events.removed, self._enable)  # the annotation layer deleted: nothing to accept
        self.refresh()

    # -- view -------------------------------------------------------------------------------------

    @property
    def unlabelled(self) -> int:
        task = self.session.task
        return task.unlabelled if task is not None and task.unlabelled is not None else DEFAULT_UNLABELLED

    def models_dir(self) -> Path:
        task = self.session.task
        return paths.task_models_dir(task.root, task.name)

    def refresh(self) -> None:
        """Fill the case list (ranked order first) and the model versions; name the buttons' state."""
        task, checkpoint = self.session.task, self.session.checkpoint
        self.model_label.setText(f"model: {Path(checkpoint).name}" if checkpoint else "model: none")
        if task is None:
            self.status.setText(self._resting_text())
            self._enable()
            return
        rows = sparse.annotation_queue(task, self.ranking)
        self.cases.setRowCount(len(rows))
        for r, (case_id, score, ml) in enumerate(rows):
            texts = (case_id, "nothing found" if math.isinf(score) else "" if math.isnan(score) else f"{score:.3f}")
            texts += ("" if math.isnan(ml) else f"{ml:.1f}",)
            for c, text in enumerate(texts):
                self.cases.setItem(r, c, QTableWidgetItem(text))
        self.models.show(self.models_dir(), checkpoint)
        fit_columns(self.cases)
        self._enable()
        if self.worker is None and self.annotation_layer() is None:
            self.status.setText(self._resting_text())

    def _enable(self, *_) -> None:
        """Every button that cannot work now is off, its tooltip saying why (each answered with an error before, some
        pointing at buttons that were off themselves): no task, every case labelled, no model, no annotation open."""
        task, checkpoint = self.session.task, self.session.checkpoint
        left = bool(self.cases.rowCount()) if task is not None else False
        no_case = "open a task first (Data tab)" if task is None else "" if left else self._all_labelled()
        no_model = no_case or ("" if checkpoint else NO_MODEL)
        no_annotation = "" if self.annotation_layer() is not None else (no_case or NO_ANNOTATION)
        reasons = {
            self.rank_button: no_model,
            self.predict_button: no_model,
            self.scratch_button: no_case,
            self.unlabelled_button: no_annotation,
            self.finish_button: no_annotation,
            self.accept_button: no_annotation,
            self.undo_button: "" if self.accepted else "no accept to undo yet",
            self.train_button: "open a task first (Data tab)" if task is None else "",
            self.models.compare_button: "open a task first (Data tab)" if task is None else "",
        }
        for button, why in reasons.items():
            button.setEnabled(not why)
            button.setToolTip(why or self._tips.get(button, ""))

    def _selected_case(self) -> str | None:
        rows = self.cases.selectionModel().selectedRows()
        row = rows[0].row() if rows else 0
        item = self.cases.item(row, 0)
        return item.text() if item else None

    def _case_or_say_why(self) -> str | None:
        """The selected case to annotate, or None after one notification saying why there is none."""
        case_id = self._selected_case()
        if case_id is None and self._ready(need_model=False):
            notify_error(self._all_labelled())
        return case_id

    def _all_labelled(self) -> str:
        """What to say when the open task has no case left to annotate (the case list is empty)."""
        return f"every case of {self.session.task.name} is labelled: nothing to annotate (Data → New task from images…)"

    def _resting_text(self) -> str:
        """The status while nothing runs: what to do next."""
        task = self.session.task
        if task is None:
            return "open a task (Data tab)"
        left = self.cases.rowCount()
        if left == 0:
            return self._all_labelled()
        if self.session.checkpoint is None:  # Rank and Predict would answer "no model yet"
            return f"{left} case(s) to annotate: Annotate from scratch, or choose a model (Train tab) to predict them"
        return f"{left} case(s) to annotate: Rank them, or double-click one"

    def unsaved(self, case_id: str | None) -> str | None:
        """What opening ``case_id`` (``None``: a new annotation) would lose: the open annotation's edits since
        it was suggested or last accepted, if any (the session asks this before replacing a case's layers)."""
        layer = self.annotation_layer()
        if layer is None or case_id == self.case_id or self.suggested is None:
            return None
        if np.array_equal(np.asarray(layer.data), self.suggested):
            return None
        return (
            f"{self.case_id} has annotation edits not yet accepted: Accept them (Annotate tab) or delete the layer "
            f"'{layer.name}' to discard them, then open another case"
        )

    def annotation_layer(self):
        return case_layers(self.viewer, self.case_id).get("annotation") if self.case_id else None

    # -- workers ----------------------------------------------------------------------------------

    def _run(self, work, on_yield=None, on_return=None, desc: str = "", then=None, slot: str = "worker"):
        """Start one worker in ``slot`` ("worker" or "writer", one job each): ``on_yield(item, bar)`` per yielded
        item, ``on_return(value)``, then ``then()`` once the slot is free again (e.g. the next job)."""
        if getattr(self, slot) is not None:
            notify_error("busy: wait for the current job or press Stop")
            return None
        worker = work()
        setattr(self, slot, worker)
        if slot == "worker":
            self.stop_button.setEnabled(on_yield is not None)
        done = lambda: self._idle(worker, slot, then)  # noqa: E731 - the worker it names is made above
        return workers.start(
            self.session, worker, desc=desc, owner=self, on_yield=on_yield, on_return=on_return, on_done=done
        )

    def _idle(self, worker, slot: str, then=None) -> None:
        if getattr(self, slot) is not worker:
            return
        setattr(self, slot, None)
        if slot == "worker":
            self.stop_button.setEnabled(False)
        if then is not None:
            then()

    def _ready(self, need_model: bool = True) -> bool:
        if self.session.task is None:
            notify_error("open a task first (Data tab)")
            return False
        if need_model and self.session.checkpoint is None:
            notify_error(NO_MODEL)
            return False
        unfit = unfit_for(self.session.checkpoint, self.session.task) if need_model else None
        if unfit:
            notify_error(unfit)
        return not unfit

    def rank(self):
        """Predict every unlabelled case in a worker, list them most uncertain first, open the first."""
        if not self._ready():
            return None
        task, checkpoint = self.session.task, self.session.checkpoint
        cases = sparse.cases_to_annotate(task)
        if not cases:
            notify_error(self._all_labelled())
            return None

        @background
        def work():
            from napari_volseg.annotate.uncertainty import rank_with  # torch: imported when first needed

            yield from rank_with(checkpoint, cases)

        def on_yield(item, bar):
            if isinstance(item, ev.Progress):
                workers.show_progress(bar, item)
                self.status.setText(f"ranking {item.done}/{item.total}: {item.item}")
            else:
                self.ranking = item
                self.refresh()
                self.status.setText("ranked: the most uncertain case opens first")

        def then():
            if self.ranking:
                self.cases.selectRow(0)
                self.predict(self.ranking[0].case_id)

        return self._run(work, on_yield, desc="ranking cases", then=then)

    def predict(self, case_id: str | None):
        return self.open_case(case_id, predict=True)

    def open_case(self, case_id: str | None, predict: bool = True):
        """Open ``case_id`` with an editable annotation layer: the model's prediction, or (``predict=False``)
        nothing annotated yet (all unlabelled) for painting a few slices from scratch. The suggestion is made in
        a worker; the case then opens through the session (its image and ground truth read in its loader) and
        the annotation layer of the case before is reused."""
        if case_id is None or not self._ready(need_model=predict):
            return None
        lost = self.unsaved(None)
        if lost:
            notify_error(lost)
            return None
        task, checkpoint, unlabelled = self.session.task, self.session.checkpoint, self.unlabelled

        @background
        def work():
            return sparse.suggestion(task, case_id, checkpoint if predict else None, unlabelled)

        def on_return(suggestion):
            if self.session.task is task:
                loading.open_case(
                    self.session, case_id, then=lambda: self._show(case_id, suggestion), keep=("annotation",)
                )

        self.status.setText(f"{'predicting' if predict else 'opening'} {case_id}…")
        return self._run(work, on_return=on_return, desc=f"opening {case_id}")

    def _show(self, case_id: str, suggestion: np.ndarray) -> None:
        """The case's layers are open: add (or refill) its annotation layer with ``suggestion`` ``(z, y, x)``."""
        task = self.session.task
        self.case_id = case_id
        self.suggested = suggestion.copy()
        self.session.unsaved_work = self.unsaved  # its edits are guarded from now on
        image = case_layers(self.viewer, case_id)["image"]
        colors = annotation_colors(task.num_classes, self.unlabelled)
        layer = set_labels(self.viewer, f"{case_id} annotation", suggestion, image, "annotation", case_id, colors)
        layer.selected_label = 1
        layer.mode = "paint"
        self.viewer.layers.selection.active = layer
        self.viewer.dims.ndisplay = 2  # annotation is slice by slice ("Finish slice"); Classify's digits leave 3D on
        z = sparse.busiest_slice(suggestion, self.unlabelled)
        if z is not None:  # start on the slice with the most foreground
            self.viewer.dims.set_point(0, layer.data_to_world([z, 0, 0])[0])
        self.status.setText(f"{case_id}: correct the annotation with the brush, eraser and fill, then Accept")
        self._enable()

    # -- editing ----------------------------------------------------------------------------------

    def paint_unlabelled(self) -> None:
        layer = self.annotation_layer()
        if layer is None:  # it did nothing and said nothing
            notify_error(NO_ANNOTATION)
            return
        layer.selected_label = self.unlabelled
        layer.mode = "paint"

    def current_slice(self) -> int:
        layer = self.annotation_layer()
        return int(round(layer.world_to_data(self.viewer.dims.point)[0]))

    def finish_slice(self) -> None:
        layer = self.annotation_layer()
        if layer is None:
            notify_error(NO_ANNOTATION)
            return
        z = self.current_slice()
        data = np.asarray(layer.data)
        sparse.finish_slice(data, z, self.unlabelled)
        layer.data = data
        layer.refresh()

    def accept(self):
        """Write the open annotation into the task (with backup, in a worker: it may run while a model trains),
        move the case into training, report the edits; the task then reloads in the session's loader."""
        layer = self.annotation_layer()
        if layer is None or self.session.task is None:
            notify_error("nothing to accept: open a case first (Predict or Annotate from scratch)")
            return None
        task, case_id, suggested, unlabelled = self.session.task, self.case_id, self.suggested, self.unlabelled
        labels = np.array(layer.data)  # a copy: painting may go on while it is written
        if case_id in {done.case_id for done in self.accepted} and np.array_equal(labels, suggested):
            show_info(f"{case_id} is accepted already: nothing changed since")
            return None

        @background
        def work():
            return accepting.accept(task, case_id, labels), edit_stats(suggested, labels, unlabelled)

        def on_return(result):
            done, stats = result
            self.accepted.append(done)
            if self.case_id == case_id:
                self.suggested = labels  # accepted: nothing of it is unsaved now
            self.last_edits = stats
            used = self.session.prompts_used.pop(f"{case_id} annotation", {})
            text = accept_report(case_id, stats, used, done.sparse)
            self.edits_label.setText(text)
            self.status.setText(f"accepted {case_id}: it trains with the others now; open the next case")
            show_info(text)
            loading.open_task(self.session, task.root, open_first_case=False)

        return self._run(work, on_return=on_return, desc=f"accepting {case_id}", slot="writer")

    def undo(self):
        """Put the last accepted case's label and ``dataset.json`` back as they were (in a worker)."""
        if not self.accepted or self.session.task is None:
            return None
        done, task = self.accepted[-1], self.session.task

        @background
        def work():
            accepting.undo(task.root, done)

        def on_return(_):
            self.accepted.remove(done)
            self.edits_label.setText(f"undid the accept of {done.case_id}")
            self.status.setText(accepting.undo_report(done.case_id, self.session.checkpoint, task.name))
            loading.open_task(self.session, task.root, open_first_case=False)

        return self._run(work, on_return=on_return, desc=f"undoing {done.case_id}", slot="writer")

    def stop(self) -> None:
        """A training run ends after its current step (its last checkpoint written); a ranking at once."""
        stop = getattr(self.worker, "volseg_stop", None)
        if stop is not None:
            stop()
            self.status.setText("stopping after this step…")
        elif self.worker is not None:
            self.worker.quit()

    def train(self):
        return self.models.train()

    def use_version(self, path: Path) -> None:
        self.session.set_checkpoint(Path(path))
