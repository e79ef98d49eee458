""" "New task from images…": a folder of your own scans (NIfTI, NRRD, MetaImage, DICOM series) and labels -> an MSD
task, in a worker.

The Data widget opens :class:`NewTaskDialog`; dropping a folder of scans without a
``dataset.json`` on the viewer offers the same dialog (:func:`offer`), with the folder filled in.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils import progress
from napari.utils.notifications import show_info
from psygnal import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from napari_volseg._napari.notify import background, notify_error
from napari_volseg.io.new_task import AUTO, MODALITIES, write_task_from_files

AUTO_CHOICE = "auto (from the scans)"


class _Drops:
    folder_dropped = Signal(object)


DROPS = _Drops()
"""Emits the folder of scans dropped on a viewer; Data widgets answer with the dialog."""


def offer(folder: Path) -> None:
    """A folder of scans without ``dataset.json`` was dropped: offer to make it a task."""
    if len(DROPS.folder_dropped) == 0:
        show_info(f"{folder.name} has no dataset.json: Data → New task from images… makes it a task")
    DROPS.folder_dropped.emit(Path(folder))


def _folder_row(edit: QLineEdit, title: str) -> QHBoxLayout:
    row = QHBoxLayout()
    browse = QPushButton("…")
    browse.setMaximumWidth(32)
    browse.clicked.connect(lambda: edit.setText(QFileDialog.getExistingDirectory(None, title) or edit.text()))
    row.addWidget(edit)
    row.addWidget(browse)
    return row


class NewTaskDialog(QDialog):
    """The fields of ``volseg new-task``: images, labels (optional), name, modality, classes, out."""

    def __init__(self, parent: QWidget | None = None, images: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("New task from images")
        self.images = QLineEdit(str(images) if images else "")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("optional: label files named like their scans")
        self.name = QLineEdit(Path(images).name if images else "")
        self.modality = QComboBox()
        self.modality.addItems([AUTO_CHOICE, *MODALITIES])  # a wrong guess of CT washes an MRI out
        self.classes = QLineEdit("background,foreground")
        self.out = QLineEdit(str(Path(images).parent / f"{Path(images).name}-task") if images else "")
        form = QFormLayout(self)
        form.addRow("images folder", _folder_row(self.images, "Folder of scans (NIfTI, NRRD, MetaImage, DICOM series)"))
        form.addRow("labels folder", _folder_row(self.labels, "Folder of label files"))
        form.addRow("task name", self.name)
        form.addRow("modality", self.modality)
        form.addRow("classes", self.classes)
        form.addRow("new task folder", self.out)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict:
        """Keyword arguments of :func:`~napari_volseg.io.new_task.write_task_from_files`."""
        return {
            "images": Path(self.images.text()),
            "out": Path(self.out.text()),
            "name": self.name.text(),
            "modality": AUTO if self.modality.currentText() == AUTO_CHOICE else self.modality.currentText(),
            "classes": self.classes.text(),
            "labels": Path(self.labels.text()) if self.labels.text().strip() else None,
        }


def make_task(values: dict, on_done, session=None):
    """Write the task in a worker; ``on_done(folder)`` on the GUI thread; errors become one notification."""
    bar = progress(total=0, desc="making the task")

    @background
    def work():
        return write_task_from_files(**values)

    worker = work()
    worker.returned.connect(on_done)
    worker.errored.connect(notify_error)
    worker.finished.connect(bar.close)
    if session is not None:
        session.track(worker)
    worker.start()
    return worker
