"""Data: choose a task folder (or the synthetic task, or download an MSD task), see its cases, open one."""

from __future__ import annotations

from pathlib import Path

from napari.qt.threading import thread_worker
from napari.utils import progress
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
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

from napari_volseg._napari.state import session_for
from napari_volseg._napari.widgets.common import notify_error, show_case
from napari_volseg._napari.widgets.new_task import DROPS, NewTaskDialog, make_task
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon
from napari_volseg.io.download import MSD_MD5

COLUMNS = ("case", "shape (z, y, x)", "spacing mm", "label", "split")


class DataWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open task folder…")
        self.synthetic_button = QPushButton("Synthetic task")
        self.synthetic_kind = QComboBox()
        self.synthetic_kind.addItems(["ct", "mri"])
        row.addWidget(self.open_button)
        row.addWidget(self.synthetic_button)
        row.addWidget(self.synthetic_kind)
        layout.addLayout(row)
        self.new_task_button = QPushButton("New task from images…")
        layout.addWidget(self.new_task_button)
        row = QHBoxLayout()
        self.download_task = QComboBox()
        self.download_task.addItems(sorted(MSD_MD5))
        self.download_task.setCurrentText("Task09_Spleen")
        self.download_button = QPushButton("Download…")
        row.addWidget(self.download_task)
        row.addWidget(self.download_button)
        layout.addLayout(row)
        self.summary = QLabel("No task open. Drop NIfTI files on the viewer, or open a task.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(150)
        layout.addWidget(self.table)
        self.open_case_button = QPushButton("Open selected case")
        layout.addWidget(self.open_case_button)

        self.open_button.clicked.connect(self._choose_folder)
        self.synthetic_button.clicked.connect(lambda: self.open_synthetic(self.synthetic_kind.currentText()))
        self.download_button.clicked.connect(self._download)
        self.table.cellDoubleClicked.connect(lambda r, c: self.open_case(self.table.item(r, 0).text()))
        self.open_case_button.clicked.connect(self._open_selected)
        self.session.task_changed.connect(self._fill)
        self.new_task_button.clicked.connect(lambda: self.new_task())
        DROPS.folder_dropped.connect(self.new_task)

    # -- actions --------------------------------------------------------------------------------

    def open_task(self, folder: str | Path) -> None:
        try:
            task = decathlon.load_task(folder)
        except VolsegError as exc:
            notify_error(exc)
            return
        self.session.set_task(task)
        first = (task.cases or task.test_cases)[0]
        self.open_case(first.id)

    def new_task(self, images: Path | None = None):
        """Ask for ``volseg new-task``'s fields, write the task in a worker, then open it."""
        dialog = NewTaskDialog(self, images)
        if dialog.exec():
            return make_task(dialog.values(), self.open_task, self.session)
        return None

    def open_synthetic(self, kind: str = "ct") -> None:
        from napari_volseg._napari.sample_data import synthetic_task_dir

        self.open_task(synthetic_task_dir(kind))

    def open_case(self, case_id: str) -> None:
        if self.session.task is None:
            return
        try:
            show_case(self.viewer, self.session.task, case_id)
        except VolsegError as exc:
            notify_error(exc)
            return
        self.session.case_id = case_id
        self.session.case_opened.emit(case_id)

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

    def download(self, task_name: str, target: Path, base_url: str | None = None):
        """Download in a worker; bytes show in napari's activity dock; the task opens when done."""
        from napari_volseg.engine.events import Downloaded
        from napari_volseg.io import download

        bar = progress(total=0, desc=f"downloading {task_name}")
        kwargs = {"base_url": base_url} if base_url else {}

        @thread_worker
        def work():
            yield from download.download_task(task_name, target, **kwargs)

        def on_event(event):
            if isinstance(event, Downloaded):
                bar.close()
                self.open_task(event.path)
                return
            if event.total and bar.total != event.total:
                bar.total = event.total
            bar.n = event.done
            bar.refresh()

        worker = work()
        worker.yielded.connect(on_event)
        worker.errored.connect(lambda exc: (bar.close(), notify_error(exc)))
        self.session.track(worker)
        worker.start()
        return worker

    # -- view -----------------------------------------------------------------------------------

    def _fill(self, task) -> None:
        cases = task.cases + task.test_cases
        self.summary.setText(
            f"<b>{task.name}</b> — {len(task.cases)} labelled, {len(task.test_cases)} test cases; "
            f"{task.kind.upper()}; labels: " + ", ".join(f"{k} {v}" for k, v in sorted(task.labels.items()))
        )
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(cases))
        for r, case in enumerate(cases):
            shape, spacing = _header_geometry(case)
            values = (case.id, shape, spacing, "yes" if case.label_path else "no", self.session.split_of(case.id))
            for c, value in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.table.setSortingEnabled(True)
        self.table.sortItems(0, Qt.AscendingOrder)


def _header_geometry(case) -> tuple[str, str]:
    """Shape and spacing from the NIfTI header only (no voxels read)."""
    try:
        geometry = case.geometry()
    except VolsegError:
        return "?", "?"
    shape, spacing = geometry.shape_zyx, geometry.spacing_zyx
    return " × ".join(str(s) for s in shape), " × ".join(f"{s:.2f}" for s in spacing)
