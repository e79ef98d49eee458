""" "New task from images…": a folder of your own scans (NIfTI, NRRD, MetaImage, DICOM series) and labels -> an MSD
task, in a worker.

The Data widget opens :class:`NewTaskDialog`; dropping a folder of scans without a
``dataset.json`` on the viewer offers the same dialog (:func:`offer`), with the folder filled in.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from napari_volseg._napari.notify import background, notify_error
from napari_volseg.io import volumes
from napari_volseg.io.layouts import detect_layout, propose
from napari_volseg.io.new_task import AUTO, MODALITIES, write_task_from_files

AUTO_CHOICE = "auto (from the scans)"
VIEW_ONLY = 2
"""The dialog's result when the user chose to only view the dropped folder's scans."""
VIEW_AT_MOST = 4


def offer(folder: Path, session=None) -> None:
    """A folder of scans without ``dataset.json`` was dropped: the Data dock of that viewer's ``session`` (default:
    the current viewer's) offers to make it a task, its fields filled from the folder's layout; with no Data dock
    open, one line says where to find it. Docks of other viewers are not asked."""
    if session is None:
        import napari

        from napari_volseg._napari.loading import session_for

        viewer = napari.current_viewer()
        session = session_for(viewer) if viewer is not None else None
    if session is None or len(session.folder_offered) == 0:
        show_info(f"{folder.name} has no dataset.json: Data → New task from images… makes it a task")
        return
    layout = detect_layout(folder)
    key = (layout.images if layout is not None else Path(folder)).resolve()
    if key in session.offered:  # images/ and labels/ dropped together: one offer (the second was a task of labels)
        return
    session.offered.add(key)
    try:
        session.folder_offered.emit(Path(folder))  # its dialog is modal: answered when this returns
    finally:
        session.offered.discard(key)


def _folder_row(edit: QLineEdit, title: str) -> QHBoxLayout:
    row = QHBoxLayout()
    browse = QPushButton("…")
    browse.setMaximumWidth(32)
    browse.clicked.connect(lambda: edit.setText(QFileDialog.getExistingDirectory(None, title) or edit.text()))
    row.addWidget(edit)
    row.addWidget(browse)
    return row


class NewTaskDialog(QDialog):
    """The fields of ``volseg new-task``: images, labels (optional), name, modality, classes, out.

    Given a dropped folder it fills them from the folder's layout (:func:`~napari_volseg.io.layouts.detect_layout`:
    ``images/`` beside ``labels/``, nnU-Net's ``imagesTr/`` + ``labelsTr/``, ``*_seg`` labels beside their scans)
    and proposes the classes from the values the labels hold (read in a worker); opened without one it shows the
    fields of the last task asked for, so a mistake is corrected rather than typed again."""

    remembered: dict = {}
    """The last fields asked for (kept when making the task failed)."""

    def __init__(self, parent: QWidget | None = None, images: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("New task from images")
        self.setMinimumWidth(640)  # the path fields whole, not cut to their first characters
        self.images = QLineEdit(str(images) if images else "")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("optional: label files named like their scans")
        self.name = QLineEdit(Path(images).name if images else "")
        self.modality = QComboBox()
        self.modality.addItems([AUTO_CHOICE, *MODALITIES])  # a wrong guess of CT washes an MRI out
        self.classes = QLineEdit("background,foreground")
        self.out = QLineEdit(str(Path(images).parent / f"{Path(images).name}-task") if images else "")
        self.found = QLabel("")
        self.found.setWordWrap(True)
        self.proposing = None
        if images is not None:
            self._fill_from(Path(images))
        elif self.remembered:
            self._restore(self.remembered)
        form = QFormLayout(self)
        form.addRow(self.found)
        form.addRow("images folder", _folder_row(self.images, "Folder of scans (NIfTI, NRRD, MetaImage, DICOM series)"))
        form.addRow("labels folder", _folder_row(self.labels, "Folder of label files"))
        form.addRow("task name", self.name)
        form.addRow("modality", self.modality)
        form.addRow("classes", self.classes)
        form.addRow("new task folder", self.out)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        if images is not None:  # a dropped folder: looking at its scans needs no task (Cancel opened nothing)
            count = min(getattr(self, "scan_count", VIEW_AT_MOST), VIEW_AT_MOST)
            view = buttons.addButton(f"Only view the first {count}", QDialogButtonBox.ButtonRole.ActionRole)
            view.setToolTip("open the folder's first scans as dropped files, without making a task")
            view.clicked.connect(lambda: self.done(VIEW_ONLY))
        form.addRow(buttons)

    def scans_to_view(self, limit: int | None = VIEW_AT_MOST) -> list[Path]:
        """The first ``limit`` scans (files, DICOM series folders) of the images folder."""
        folder = Path(self.images.text())
        try:
            found = sorted(p for p in folder.iterdir() if volumes.is_scan_file(p) or volumes.holds_dicom(p))
        except OSError:
            return []
        return found[:limit]

    def _fill_from(self, folder: Path) -> None:
        layout = detect_layout(folder)
        if layout is None:
            return
        self.images.setText(str(layout.images))
        self.labels.setText(str(layout.labels) if layout.labels else "")
        self.name.setText(layout.name)
        root = layout.images.parent if layout.labels is not None and layout.labels != layout.images else layout.images
        self.out.setText(str(root.parent / f"{layout.name}-task"))
        if layout.modality:
            self.modality.setCurrentText(layout.modality)
        scans = len(self.scans_to_view(limit=None))
        self.found_prefix = f"found: {scans} scan(s) in {layout.images.name}/ ({layout.kind})"
        self.found.setText(self.found_prefix + (", reading the label values…" if layout.labels else ""))
        self.scan_count = scans
        if layout.classes:
            self.classes.setText(layout.classes)
            self.found.setText(f"{self.found_prefix}; classes from its dataset.json")
        elif layout.labels is not None:
            self._propose(layout.images, layout.labels, layout.kind)

    def _propose(self, images: Path, labels: Path, kind: str) -> None:
        """Read the label values in a worker and propose one class per value (named label1, label2, ...)."""

        @background
        def work():
            return propose(images, labels)

        def proposed(result: tuple[str, str]) -> None:
            text, note = result
            try:
                self.classes.setText(text)
                self.found.setText(
                    f"{getattr(self, 'found_prefix', 'found: ' + kind)}; the labels hold {text.count(',')} class(es) "
                    "besides background" + (f". Note: {note}" if note else "")
                )
                self.adjustSize()  # the note's lines were cut at the top and bottom of a dialog sized before it
            except RuntimeError:  # the dialog was closed meanwhile
                pass

        self.proposing = work()
        self.proposing.returned.connect(proposed)
        self.proposing.errored.connect(lambda exc: self.found.setText(f"found: {kind}; {exc}"))
        self.proposing.start()

    def _restore(self, values: dict) -> None:
        self.images.setText(str(values.get("images") or ""))
        self.labels.setText(str(values.get("labels") or ""))
        self.name.setText(values.get("name", ""))
        self.modality.setCurrentText(AUTO_CHOICE if values.get("modality") == AUTO else values.get("modality", ""))
        self.classes.setText(values.get("classes", ""))
        self.out.setText(str(values.get("out") or ""))

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
    """Write the task in a worker; ``on_done(folder)`` on the GUI thread; errors become one notification (the
    dialog, opened again, shows these fields to correct)."""
    NewTaskDialog.remembered = dict(values)

    def done(folder):
        NewTaskDialog.remembered = {}
        on_done(folder)

    bar = progress(total=0, desc="making the task")

    @background
    def work():
        return write_task_from_files(**values)

    worker = work()
    worker.returned.connect(done)
    worker.errored.connect(notify_error)
    worker.finished.connect(bar.close)
    if session is not None:
        session.track(worker)
    worker.start()
    return worker
