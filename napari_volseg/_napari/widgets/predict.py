"""Predict & evaluate: segment the current or all cases in a worker, compare with ground truth, export."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_volseg._napari import loading, workers
from napari_volseg._napari.layers import LEGEND, META_KEY
from napari_volseg._napari.loading import case_layers, in_session_turns, remove_other_case_layers, session_for
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import (
    NumberItem,
    compact,
    fit_columns,
    listen,
    make_table,
    set_labels,
    usable_or_asked,
)
from napari_volseg._napari.widgets.model_chooser import ModelChooser
from napari_volseg.errors import VolsegError
from napari_volseg.evaluate import (
    NOTHING_TO_EXPORT,
    NOTHING_TO_SAVE,
    export_scores,
    mean_text,
    table_values,
    write_predictions,
)
from napari_volseg.events import CasePredicted
from napari_volseg.io.scopes import SCOPES, cases_in_scope

NO_MODEL = "no model: choose one above, or train one (Train tab)"


READY = "model in use:"


class PredictWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        self.predicted, self.stopping = 0, False
        """Cases of the running prediction done so far; whether Stop was pressed."""
        layout = QVBoxLayout(self)
        self.chooser = ModelChooser(self.session)
        row = QHBoxLayout()
        row.addWidget(QLabel("model"))
        row.addWidget(self.chooser, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.scope = compact(QComboBox())
        self.scope.addItems(SCOPES)
        self.tta = QCheckBox("mirror TTA")
        self.run_button = QPushButton("Predict")
        row.addWidget(self.scope, 1)
        row.addWidget(self.tta)
        row.addWidget(self.run_button)
        layout.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = make_table(min_height=160)
        self.table.setToolTip("click a row to open that case with its prediction and errors")
        layout.addWidget(self.table, 1)
        self.mean_label = QLabel("")
        self.mean_label.setWordWrap(True)  # the means apart (unseen / training cases) are longer than the dock
        layout.addWidget(self.mean_label)
        self.legend = QLabel(LEGEND)
        self.legend.setWordWrap(True)
        layout.addWidget(self.legend)
        row = QHBoxLayout()
        self.csv_button = QPushButton("Export CSV…")
        self.save_button = QPushButton("Save predictions…")
        self.cohort_button = QPushButton("Cohort QC…")
        self.cohort_button.setToolTip("a cohort predicted by volseg predict: its QC report and flagged scans")
        for button in (self.csv_button, self.save_button, self.cohort_button):
            row.addWidget(button)
        layout.addLayout(row)

        self.run_button.clicked.connect(self._run_clicked)
        self.table.cellClicked.connect(self._row_clicked)
        self.csv_button.clicked.connect(self._csv_dialog)
        self.save_button.clicked.connect(self._save_dialog)
        self.cohort_button.clicked.connect(self.cohort_dialog)
        listen(self, self.session.checkpoint_changed, self._show_model)
        listen(self, self.session.results_changed, self.refresh_table)
        listen(self, napari_viewer.layers.events.removed, self._layer_removed)
        self._show_model(self.session.checkpoint)
        self.refresh_table()
        if self.session.results and self.session.checkpoint:  # a reopened panel: what the table holds, and why
            self.status.setText(f"{len(self.session.results)} case(s) predicted so far; click a row to open one")

    def _show_model(self, path) -> None:
        """Predict is off without a model, saying why; the model's preset decides whether mirror TTA starts ticked
        (and whether it can be)."""
        if self.worker is None:
            self.run_button.setEnabled(bool(path))
            self.run_button.setToolTip("" if path else NO_MODEL)
        if not path:
            self.status.setText(NO_MODEL)
            return
        if self.status.text() in ("", NO_MODEL) or self.status.text().startswith(READY):
            self.status.setText(f"{READY} {Path(path).stem}: choose the cases above and press Predict")
        from napari_volseg.engine.checkpoint import mirror_tta

        mirrored, default = mirror_tta(path)
        self.tta.setEnabled(mirrored)
        self.tta.setChecked(default)
        self.tta.setToolTip(
            "average over mirrorings along the axes the model was trained mirrored on"
            if mirrored
            else "this model was trained without mirroring: mirrored inputs would only hurt"
        )

    # -- prediction -------------------------------------------------------------------------------

    def _cases(self, scope: str) -> list[str]:
        """The cases ``scope`` names (:func:`~napari_volseg.engine.predict.cases_in_scope` decides); [] said why."""
        from napari_volseg.zoo.backend import provenance

        task, session = self.session.task, self.session
        if task is None:
            return []
        trained = provenance(session.checkpoint).trained_in(task.name) if session.checkpoint else frozenset()
        validation = session.split.val if session.split is not None else ()
        try:
            return cases_in_scope(task, scope, current=session.case_id, validation=validation, trained=trained)
        except VolsegError as exc:
            notify_error(str(exc))
            return []

    def predict(self, scope: str = "current case"):
        if self.worker is not None:
            return None
        if self.session.checkpoint is None:
            notify_error(NO_MODEL)
            return None
        if not usable_or_asked(self, self.session.checkpoint):
            return None
        if self.session.task is None or (scope == "current case" and self._dropped_scan_selected()):
            return self.predict_layer()  # a dropped scan: the image in view (not the task's open case under it)
        task, checkpoint = self.session.task, self.session.checkpoint
        cases = [task.case(case_id) for case_id in self._cases(scope)]
        if not cases:  # said why already
            return None
        tta = self.tta.isChecked()  # the rest of the inference settings come from the checkpoint's preset

        @background
        def work():
            from napari_volseg.engine.predict import predict_cases
            from napari_volseg.zoo.backend import open_model

            yield from predict_cases(open_model(checkpoint, tta=tta), task, cases)

        self.worker = work()
        self.predicted, self.stopping = 0, False
        self.run_button.setText("Stop")  # a task's cases can take minutes on a CPU: Stop ends after the current one
        self.status.setText(f"predicting 1 / {len(cases)}: {cases[0].id}…")
        return workers.start(
            self.session,
            self.worker,
            desc=f"predicting 1 / {len(cases)}: {cases[0].id}",
            total=len(cases),
            owner=self,
            on_yield=lambda event, bar: self._on_result(bar, cases, event),
            on_done=lambda: self._idle(len(cases)),
        )

    def predict_layer(self):
        """Predict an image layer opened without a task (a dropped scan): :func:`.predict_scan.predict_scan`."""
        from napari_volseg._napari.widgets.predict_scan import predict_scan

        return predict_scan(self)

    def _show_next(self, bar, cases: list, done: int) -> None:
        """Name the case predicted now: "2 / 3: la_018" in the status and the progress bar."""
        text = f"{done + 1} / {len(cases)}: {cases[done].id}"
        self.status.setText(f"predicting {text}…")
        bar.set_description(f"predicting {text}")

    def _run_clicked(self) -> None:
        if self.worker is not None:
            self.stop()
        else:
            self.predict(self.scope.currentText())

    def stop(self) -> None:
        """End a task's prediction after the case being predicted (its results so far stay in the table)."""
        from napari.qt.threading import GeneratorWorker

        if not isinstance(self.worker, GeneratorWorker):  # a dropped scan: one case, nothing to stop between
            return
        self.stopping = True
        self.worker.quit()
        self.run_button.setEnabled(False)
        self.status.setText("stopping after this case…")

    def _on_result(self, bar, cases: list, event: CasePredicted) -> None:
        bar.update(1)
        self.predicted = event.done
        # the old model's rows go at the first result, not at Start: a model that fails to load keeps the table
        if event.done == 1 and self.session.results_for_model(event.result.model):
            show_info(f"the previous model's results were cleared: the table shows {Path(event.result.model).name}'s")
        if self.worker is None:  # should a result arrive after the worker finished, the status stays true
            self._say_done(event.total)
        elif event.done < event.total and not self.stopping:
            self._show_next(bar, cases, event.done)
        result = event.result
        self.session.add_result(result)
        if result.case == self.session.case_id or len(self.session.results) == 1:
            self.show_result(result.case)

    def _idle(self, total: int | None) -> None:
        """Back to idle; ``total`` cases of the task were predicted (``None``: a dropped scan, its status stays)."""
        self.worker = None
        self.run_button.setText("Predict")
        self.run_button.setEnabled(self.session.checkpoint is not None)
        if total is not None:
            self._say_done(total)

    def _say_done(self, total: int) -> None:
        if self.stopping:
            self.status.setText(f"stopped: predicted {self.predicted} of {total} case(s); click a row to open one")
        elif self.predicted < total:  # the run failed (its one-line error was shown)
            self.status.setText(f"predicted {self.predicted} of {total} case(s): the rest failed")
        else:
            self.status.setText(f"predicted {total} case(s); click a row to open one" if total else "")

    def show_result(self, case_id: str):
        """Open the case, then add its prediction and error layers next to the ground truth."""
        if self.session.task is None:
            return None
        return loading.open_case(
            self.session, case_id, then=lambda: self._add_result_layers(case_id), keep=("prediction", "errors")
        )

    def _add_result_layers(self, case_id: str) -> None:
        """The case's prediction and error layers, one per event-loop turn; then other cases' result layers go."""
        result = self.session.results.get(case_id)
        layers = case_layers(self.viewer, case_id)
        if result is None or "image" not in layers:
            return
        image = layers["image"]

        def prediction():
            pred = set_labels(self.viewer, f"{case_id} prediction", result.labels, image, "prediction", case_id)
            pred.metadata["volseg"]["geometry"] = result.geometry

        def errors():
            set_labels(self.viewer, f"{case_id} errors", result.errors, image, "errors", case_id)

        steps = [prediction] + ([errors] if result.errors is not None else [])
        steps.append(remove_other_case_layers(self.viewer, case_id))  # other cases' result layers that found no use
        # another case asked for: stop; counted as loading until done (busy_loading)
        in_session_turns(self.session, steps, current=lambda: self.session.showing == case_id)

    # -- table ------------------------------------------------------------------------------------

    def refresh_table(self) -> None:
        results = list(self.session.results.values())
        names = {k: v for k, v in self.session.label_names().items() if k > 0}
        # two-line headers: "HD95 left atrium mm" on one line pushed the volume columns out of a 430 px dock
        headers = ["case"] + [f"Dice\n{n}" for n in names.values()] + [f"HD95 mm\n{n}" for n in names.values()]
        headers += ["pred\nmL", "true\nmL"]
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.horizontalHeader().setMinimumSectionSize(36)
        self.table.setRowCount(len(results))
        for r, result in enumerate(results):
            item = QTableWidgetItem(result.case + (" *" if result.trained_on else ""))
            item.setData(Qt.UserRole, result.case)
            if result.trained_on:
                model = Path(result.model).name
                item.setToolTip(f"* {model} was trained on this case: its Dice says little about unseen scans")
            self.table.setItem(r, 0, item)
            for c, (value, digits) in enumerate(table_values(result, list(names))):
                self.table.setItem(r, c + 1, NumberItem(value, digits))
        self.table.setSortingEnabled(True)
        self.mean_label.setText(mean_text(results))
        scored = any(r.scores for r in results)  # off with nothing to write, saying why
        self.csv_button.setEnabled(scored), self.csv_button.setToolTip("" if scored else NOTHING_TO_EXPORT)
        self.save_button.setEnabled(bool(results)), self.save_button.setToolTip("" if results else NOTHING_TO_SAVE)
        fit_columns(self.table)

    def _dropped_scan_selected(self) -> bool:
        """Whether the selected layer is a dropped scan's image, not a task case's (the walkthrough selected a
        dropped 4D scan's volume with a task open: the task's case was predicted and drawn under it)."""
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        return isinstance(active, Image) and not active.metadata.get(META_KEY, {}).get("task")

    def _layer_removed(self, event) -> None:
        """A dropped scan's image deleted (no layer of it left): its row goes (the walkthrough's rows outlived it)."""
        meta = event.value.metadata.get(META_KEY, {})
        case = meta.get("case")
        if meta.get("role") == "image" and case and not case_layers(self.viewer, case, task_only=False).get("image"):
            self.session.forget_dropped(case)

    def _row_clicked(self, row: int, column: int) -> None:
        self.show_result(self.table.item(row, 0).data(Qt.UserRole))

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the scores as CSV (:func:`~napari_volseg.evaluate.export_scores`); a path that cannot be written,
        or nothing scored yet, is one notification and nothing written (None)."""
        try:
            written, cases = export_scores(list(self.session.results.values()), self.session.label_names(), path)
        except VolsegError as exc:
            notify_error(exc)
            return None
        show_info(f"wrote the scores of {cases} case(s) to {written}")
        return written

    def save_predictions(self, folder: str | Path) -> list[Path]:
        """Write each prediction in its scan's format and geometry (:func:`~napari_volseg.evaluate.write_predictions`);
        a folder that cannot be written, or nothing predicted yet, is one notification and no file (an empty list)."""
        try:
            saved = write_predictions(list(self.session.results.values()), folder)
        except (OSError, VolsegError) as exc:
            notify_error(exc)
            return []
        show_info(f"saved {len(saved)} prediction(s) in {Path(folder)}")
        return saved

    def cohort_dialog(self):
        from napari_volseg._napari.widgets.cohort import CohortDialog

        dialog = CohortDialog(self.session, self)
        window = self.window().geometry()  # over the right edge (the dock), so the scan it opens stays in view
        dialog.move(window.right() - dialog.width() - 24, window.top() + 80)
        dialog.show()
        return dialog

    def _csv_dialog(self) -> None:  # the button is off with nothing to export
        path, _ = QFileDialog.getSaveFileName(self, "Export Dice table", "dice.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _save_dialog(self) -> None:  # the button is off with nothing to save
        folder = QFileDialog.getExistingDirectory(self, "Save predictions (each scan's own format and geometry) into")
        if folder:
            self.save_predictions(folder)
