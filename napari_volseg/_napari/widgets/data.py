"""Data: choose a task folder (or the synthetic task, or download an MSD task), see its cases, open one.

Tasks and cases open in workers (the session's loaders); this widget only asks and shows.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
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
from napari_volseg._napari.loading import session_for
from napari_volseg._napari.notify import background
from napari_volseg._napari.state import CaseInfo
from napari_volseg._napari.widgets.common import compact, fit_columns, listen, make_table
from napari_volseg._napari.widgets.new_task import VIEW_ONLY, NewTaskDialog, make_task
from napari_volseg.io.download import MSD_MD5

COLUMNS = ("case", "shape z×y×x", "spacing mm", "split")
SPLIT_NAMES = {"validation": "val"}
"""Short enough for a 1366 px screen's dock; the header's tooltip spells them out."""


def _row(info: CaseInfo, split: str) -> tuple[str, ...]:
    """A table row; a case without a label file (MSD's imagesTs/) is one to annotate: "unlabelled", not a test."""
    shape = "×".join(map(str, info.shape)) if info.shape else "?"
    spacing = "×".join(f"{s:.2f}" for s in info.spacing) if info.spacing else "?"
    return info.id, shape, spacing, SPLIT_NAMES.get(split, split) if info.labelled else "unlabelled"


NO_TASK = (
    "No task open. Drop scans (NIfTI, NRRD, MetaImage, a DICOM folder) or a task folder on the viewer, or open a task."
)


class DataWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open task folder…")
        self.open_button.setToolTip("an MSD task folder (with dataset.json); or drop it on the viewer")
        self.synthetic_button = QPushButton("Synthetic task")
        self.synthetic_button.setToolTip("a small synthetic task written on first use: no download")
        self.synthetic_kind = compact(QComboBox())
        self.synthetic_kind.addItems(["ct", "mri"])
        self.new_task_button = QPushButton("New task from images…")
        self.new_task_button.setToolTip(
            "a folder of your own scans (NIfTI, NRRD, MetaImage, DICOM series) and labels becomes a task; or drop it"
        )
        row.addWidget(self.open_button)
        row.addWidget(self.new_task_button)
        layout.addLayout(row)
        row = QHBoxLayout()  # three short rows: two wide ones made the tab wider than a 430 px dock at 1366 x 768
        row.addWidget(self.synthetic_button)
        row.addWidget(self.synthetic_kind, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.download_task = compact(QComboBox())
        self.download_task.addItems(sorted(MSD_MD5))
        self.download_task.setCurrentText("Task09_Spleen")
        self.download_button = QPushButton("Download…")
        row.addWidget(self.download_task, 1)
        row.addWidget(self.download_button)
        layout.addLayout(row)
        self.summary = QLabel(NO_TASK)
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.table = make_table(COLUMNS, min_height=180)
        self.table.horizontalHeaderItem(3).setToolTip(
            "train: trains the model; val: validation (scores each checkpoint); held out: labelled but kept from "
            "training and validation alike (Train's test cases setting), for an honest score; test: no labels"
        )
        layout.addWidget(self.table, 1)
        self.open_case_button = QPushButton("Open selected case")
        self.open_case_button.setToolTip("or double-click a row")
        layout.addWidget(self.open_case_button)

        self.open_button.clicked.connect(self._choose_folder)
        self.synthetic_button.clicked.connect(lambda: self.open_synthetic(self.synthetic_kind.currentText()))
        self.download_button.clicked.connect(self._download)
        self.table.cellDoubleClicked.connect(lambda r, c: self.open_case(self.table.item(r, 0).text()))
        self.open_case_button.clicked.connect(self._open_selected)
        listen(self, self.session.task_changed, self._fill)
        listen(self, self.session.status, self._show_status)
        self.new_task_button.clicked.connect(lambda: self.new_task())
        offer_dialog = self.new_task  # a closed dock answers no more drops (a drop after it raised "deleted")
        listen(self, self.session.folder_offered, offer_dialog)
        if self.session.task is not None:
            self._fill(self.session.task)

    # -- actions --------------------------------------------------------------------------------

    def open_task(self, folder: str | Path):
        """Open an MSD task folder (in a worker); returns the worker."""
        return loading.open_task(self.session, folder)

    def new_task(self, images: Path | None = None):
        """Ask for ``volseg new-task``'s fields, write the task in a worker, then open it (in the session's)."""
        dialog = NewTaskDialog(self, images)
        answer = dialog.exec()
        if answer == VIEW_ONLY:
            return loading.open_files(self.session, dialog.scans_to_view())
        if answer:
            return make_task(dialog.values(), self.open_task, self.session)
        return None

    def open_synthetic(self, kind: str = "ct"):
        from napari_volseg.io.synthetic import synthetic_task_dir

        @background
        def work():  # written on first use: a few seconds
            return synthetic_task_dir(kind)

        self._show_status(f"writing the synthetic {kind.upper()} task…")
        return workers.start(self.session, work(), owner=self, on_return=self.open_task)

    def open_case(self, case_id: str):
        if self.session.task is None:
            return None
        return loading.open_case(self.session, case_id)

    def _open_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.open_case(self.table.item(rows[0].row(), 0).text())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an MSD task folder (with dataset.json)")
        if folder:
            self.open_task(folder)

    def _download(self) -> None:
        target = QFileDialog.getExistingDirectory(self, "Download into which folder?")
        if target:
            self.download(self.download_task.currentText(), Path(target))

    def download(self, task_name: str, target: Path, base_url: str | None = None, md5: str | None = None):
        """Download in a worker; bytes show in napari's activity dock; the task opens when done (``base_url`` and
        ``md5`` for a mirror or a task outside the MSD ten)."""
        from napari_volseg.events import Downloaded
        from napari_volseg.io import download

        kwargs = {k: v for k, v in (("base_url", base_url), ("md5", md5)) if v}

        @background
        def work():
            yield from download.download_task(task_name, target, **kwargs)

        def on_event(event, bar):
            if isinstance(event, Downloaded):
                self.open_task(event.path)
                return
            if event.total and bar.total != event.total:
                bar.total = event.total
            bar.n = event.done
            bar.refresh()

        self.worker = work()
        done = lambda: setattr(self, "worker", None)  # noqa: E731
        return workers.start(
            self.session, self.worker, desc=f"downloading {task_name}", owner=self, on_yield=on_event, on_done=done
        )

    # -- view -----------------------------------------------------------------------------------

    def _show_status(self, text: str) -> None:
        if text:
            self.summary.setText(text)
        elif self.session.task is not None:
            self._show_summary(self.session.task)
        else:  # dropped files read with no task open: "reading ..." must not stay
            self.summary.setText(NO_TASK)

    def _show_summary(self, task) -> None:
        labels = ", ".join(f"{k} {v}" for k, v in sorted(task.labels.items()) if k > 0)
        self.summary.setText(
            f"<b>{task.name}</b>: {len(task.cases)} labelled, {len(task.test_cases)} unlabelled cases; "
            f"{task.kind.upper()}; labels: {labels}. Double-click a case to open it."
        )

    def _fill(self, task) -> None:
        self._show_summary(task)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.session.cases))
        for r, info in enumerate(self.session.cases):
            for c, value in enumerate(_row(info, self.session.split_of(info.id))):
                item = QTableWidgetItem(value)
                if c in (1, 2):
                    item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.sortItems(0, Qt.AscendingOrder)
        fit_columns(self.table)
