"""Predict & evaluate: segment the current or all cases in a worker, compare with ground truth, export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils import progress
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_volseg import metrics
from napari_volseg._napari.state import session_for
from napari_volseg._napari.widgets.common import ERROR_COLORS, case_layers, notify_error, set_labels, show_case
from napari_volseg._napari.widgets.model_chooser import ModelChooser
from napari_volseg.engine.events import CasePredicted
from napari_volseg.errors import VolsegError
from napari_volseg.evaluate import score_rows
from napari_volseg.io import nifti
from napari_volseg.outputs import check_writable


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by number, not text."""

    def __init__(self, value: float, text: str):
        super().__init__(text)
        self.value = value
        self.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))

    def __lt__(self, other):
        if isinstance(other, NumberItem):
            a = -math.inf if math.isnan(self.value) else self.value
            b = -math.inf if math.isnan(other.value) else other.value
            return a < b
        return super().__lt__(other)


class PredictWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        layout = QVBoxLayout(self)
        self.chooser = ModelChooser(self.session)
        layout.addWidget(self.chooser)
        row = QHBoxLayout()
        self.scope = QComboBox()
        self.scope.addItems(["current case", "validation cases", "all cases"])
        self.tta = QCheckBox("mirror TTA")
        self.run_button = QPushButton("Predict")
        row.addWidget(self.scope)
        row.addWidget(self.tta)
        row.addWidget(self.run_button)
        layout.addLayout(row)
        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(150)
        layout.addWidget(self.table)
        self.mean_label = QLabel("")
        layout.addWidget(self.mean_label)
        row = QHBoxLayout()
        self.csv_button = QPushButton("Export CSV…")
        self.save_button = QPushButton("Save predictions…")
        row.addWidget(self.csv_button)
        row.addWidget(self.save_button)
        layout.addLayout(row)

        self.run_button.clicked.connect(lambda: self.predict(self.scope.currentText()))
        self.table.cellClicked.connect(self._row_clicked)
        self.csv_button.clicked.connect(self._csv_dialog)
        self.save_button.clicked.connect(self._save_dialog)
        self.session.checkpoint_changed.connect(self._show_model)
        self.session.results_changed.connect(self.refresh_table)
        if self.session.checkpoint:
            self._show_model(self.session.checkpoint)

    def _show_model(self, path) -> None:
        """The model's preset decides whether mirror TTA starts ticked (and whether it can be)."""
        if not path:
            return
        from napari_volseg.engine.checkpoint import read_preset

        preset = read_preset(path)
        mirrored = preset is not None and bool(preset.train.mirror_axes)
        self.tta.setEnabled(mirrored)
        self.tta.setChecked(mirrored and preset.infer.tta)
        self.tta.setToolTip(
            "average over mirrorings along the axes the model was trained mirrored on"
            if mirrored
            else "this model was trained without mirroring: mirrored inputs would only hurt"
        )

    # -- prediction -------------------------------------------------------------------------------

    def _cases(self, scope: str) -> list[str]:
        task = self.session.task
        if task is None:
            return []
        if scope == "current case":
            return [self.session.case_id] if self.session.case_id else [task.cases[0].id]
        if scope == "validation cases" and self.session.split is not None:
            return [c.id for c in self.session.split.val]
        return [c.id for c in task.cases + task.test_cases]

    def predict(self, scope: str = "current case"):
        if self.worker is not None:
            return None
        if self.session.checkpoint is None:
            notify_error("no model: choose one (pretrained, pulled or loaded) or train one first")
            return None
        if self.session.task is None:
            notify_error("open a task first (Data widget)")
            return None
        task, checkpoint = self.session.task, self.session.checkpoint
        case_ids = self._cases(scope)
        tta = self.tta.isChecked()  # the rest of the inference settings come from the checkpoint's preset

        cases = [task.case(case_id) for case_id in case_ids]

        @thread_worker
        def work():
            from napari_volseg.engine.predict import predict_cases

            yield from predict_cases(checkpoint, task, cases, tta=tta)

        bar = progress(total=len(case_ids), desc="predicting")
        self.worker = work()
        self.worker.yielded.connect(lambda event: (bar.update(1), self._on_result(event)))
        self.worker.errored.connect(notify_error)
        self.worker.finished.connect(lambda: (bar.close(), self._idle()))
        self.session.track(self.worker)
        self.run_button.setEnabled(False)
        self.worker.start()
        return self.worker

    def _idle(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)

    def _on_result(self, event: CasePredicted) -> None:
        result = event.result
        self.session.add_result(result)
        if result.case == self.session.case_id or len(self.session.results) == 1:
            self.show_result(result.case)

    def show_result(self, case_id: str) -> None:
        """Open the case with its prediction and error layers next to the ground truth."""
        task = self.session.task
        try:
            show_case(self.viewer, task, case_id)
        except VolsegError as exc:
            notify_error(exc)
            return
        self.session.case_id = case_id
        result = self.session.results.get(case_id)
        if result is None:
            return
        layers = case_layers(self.viewer, case_id)
        image = layers["image"]
        pred = set_labels(self.viewer, f"{case_id} prediction", result.labels, image, "prediction", case_id)
        pred.metadata["volseg"]["geometry"] = result.geometry
        if result.errors is not None:
            set_labels(
                self.viewer,
                f"{case_id} errors",
                result.errors,
                image,
                "errors",
                case_id,
                colors=ERROR_COLORS,
            )

    # -- table ------------------------------------------------------------------------------------

    def refresh_table(self) -> None:
        task = self.session.task
        results = list(self.session.results.values())
        names = {k: v for k, v in (task.labels.items() if task else []) if k > 0}
        headers = ["case"] + [f"Dice {n}" for n in names.values()] + [f"HD95 {n} mm" for n in names.values()]
        headers += ["pred mL", "true mL"]
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(results))
        for r, result in enumerate(results):
            self.table.setItem(r, 0, QTableWidgetItem(result.case))
            by_label = {s.label: s for s in result.scores}
            col = 1
            for label in names:
                s = by_label.get(label)
                value = s.dice if s else float("nan")
                self.table.setItem(r, col, NumberItem(value, "—" if s is None else f"{value:.4f}"))
                col += 1
            for label in names:
                s = by_label.get(label)
                value = s.hd95 if s else float("nan")
                self.table.setItem(r, col, NumberItem(value, "—" if math.isnan(value) else f"{value:.2f}"))
                col += 1
            pred_ml = sum(s.pred_ml for s in result.scores) if result.scores else float("nan")
            true_ml = sum(s.true_ml for s in result.scores) if result.scores else float("nan")
            self.table.setItem(r, col, NumberItem(pred_ml, "—" if math.isnan(pred_ml) else f"{pred_ml:.1f}"))
            self.table.setItem(r, col + 1, NumberItem(true_ml, "—" if math.isnan(true_ml) else f"{true_ml:.1f}"))
        self.table.setSortingEnabled(True)
        scored = [metrics.mean_dice(r.scores) for r in results if r.scores]
        self.mean_label.setText(f"mean Dice over {len(scored)} case(s): {np.mean(scored):.4f}" if scored else "")

    def _row_clicked(self, row: int, column: int) -> None:
        self.show_result(self.table.item(row, 0).text())

    def rows(self) -> list[dict]:
        """The table as result rows (:data:`napari_volseg.evaluate.ROW_FIELDS`), as the CSV holds them."""
        names = self.session.task.labels
        return [row for r in self.session.results.values() for row in score_rows(r.case, r.scores, names)]

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the Dice table; a path that cannot be written is one notification (None)."""
        from napari_volseg.evaluate import write_csv

        try:
            return write_csv(self.rows(), check_writable(path, what="CSV table"))
        except VolsegError as exc:
            notify_error(exc)
            return None

    def save_predictions(self, folder: str | Path) -> list[Path]:
        """Write each prediction as ``folder/<case>.nii.gz`` in its scan's geometry; a folder that
        cannot be written is one notification before any file is written (an empty list)."""
        try:
            folder = check_writable(folder, folder=True, what="prediction folder")
            return [
                nifti.save_labels(r.labels, r.geometry, folder / f"{r.case}.nii.gz")
                for r in self.session.results.values()
            ]
        except VolsegError as exc:
            notify_error(exc)
            return []

    def _csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export Dice table", "dice.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save predictions (NIfTI, source geometry) into")
        if folder:
            self.save_predictions(folder)
