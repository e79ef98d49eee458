"""The Predict tab's "Cohort QC…": a cohort folder's report (``volseg qc``), its flagged scans, each opened in a click."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QUrl
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import QDialog, QFileDialog, QHBoxLayout, QLabel, QPushButton, QTableWidgetItem, QVBoxLayout

from napari_volseg._napari import workers
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import fit_columns, make_table

PICK = "Choose the output folder of a cohort's volseg predict (it holds manifest.csv)."


class CohortDialog(QDialog):
    """Write a cohort's ``qc.html`` in a worker, list its flagged scans (why, confidence) and open one on
    double-click: the scan and its prediction, beside whatever the viewer shows."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Cohort QC")
        self.folder: Path | None = None
        self.report: Path | None = None
        self.flagged: list = []
        self.worker = None
        layout = QVBoxLayout(self)
        self.status = QLabel(PICK)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = make_table(("scan", "why", "confidence"), min_height=220)
        self.table.setToolTip("double-click a scan to open it with its prediction")
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.pick_button = QPushButton("Open cohort folder…")
        self.report_button = QPushButton("Open report in browser")
        self.report_button.setEnabled(False)
        row.addWidget(self.pick_button)
        row.addWidget(self.report_button)
        layout.addLayout(row)
        self.pick_button.clicked.connect(self._pick)
        self.report_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report))))
        self.table.cellDoubleClicked.connect(lambda row, _: self.open_row(row))
        self.resize(620, 420)

    def _pick(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, PICK)
        if folder:
            self.load(Path(folder))

    def load(self, folder: Path):
        """Make the report of ``folder`` in a worker; the table fills when it is written."""
        from napari_volseg.cohort.qc import write_report

        self.folder = folder
        self.status.setText(f"reading {folder.name}: writing its report (thumbnails of the flagged scans)…")
        self.pick_button.setEnabled(False)

        @background
        def work():
            return write_report(folder)

        def done(result):
            self.report, self.flagged = result
            self._fill()

        def failed(exc):
            self.status.setText(PICK)
            notify_error(exc)

        self.worker = work()
        return workers.start(
            self.session,
            self.worker,
            desc=f"writing the report of {folder.name}",
            owner=self,
            on_return=done,
            on_error=failed,
            on_done=lambda: self.pick_button.setEnabled(True),
            loader=True,
        )

    def _fill(self) -> None:
        self.table.setRowCount(len(self.flagged))
        for i, f in enumerate(self.flagged):
            for j, text in enumerate((Path(f.row["input"]).name, "; ".join(f.reasons), f.row.get("confidence", ""))):
                self.table.setItem(i, j, QTableWidgetItem(text))
        fit_columns(self.table)
        self.report_button.setEnabled(True)
        self.status.setText(
            f"{len(self.flagged)} flagged scan(s) in {self.folder.name}; report: {self.report}. Double-click a scan to "
            "open it with its prediction."
            if self.flagged
            else f"nothing flagged in {self.folder.name}; report: {self.report}"
        )

    def open_row(self, row: int):
        """Open flagged scan ``row`` and its prediction in the viewer."""
        from napari_volseg._napari.loading import open_prediction

        f = self.flagged[row]
        return open_prediction(self.session, Path(f.row["input"]), Path(f.row["output"]))
