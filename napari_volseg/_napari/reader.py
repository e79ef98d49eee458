"""npe2 reader: volume files (NIfTI, NRRD, MetaImage, DICOM), DICOM series folders, MSD task folders and folders of
scans, nothing else.

Read from a drop or File > Open (napari's event loop is running), the files load in a worker of the viewer's
session and the reader returns napari's "handled, no layers" sentinel ``[(None,)]``: the layers appear when the
arrays are ready and the viewer never freezes. A dropped task folder opens as the session's task (Data table
filled, Train ready); a dropped folder of scans without ``dataset.json`` offers "New task from images…". Called
from a script or a test (no event loop running) it reads at once and returns the layers, as any reader does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari_volseg._napari.layers import case_layer_data, file_layer_data
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon, volumes


def task_folder_of(path: str | Path) -> Path | None:
    """The MSD task folder ``path`` is, or that holds it (``Task02_Heart/imagesTr`` -> ``Task02_Heart``)."""
    p = Path(path)
    for folder in (p, p.parent):
        if decathlon.is_task_folder(folder):
            return folder
    return None


def napari_get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for volume files, a DICOM series folder or an MSD task folder, else None (napari tries
    others)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        return None
    if all(volumes.is_volume_file(p) and Path(p).is_file() for p in paths):
        return read_volumes
    if len(paths) == 1 and Path(paths[0]).is_dir() and task_folder_of(paths[0]) is not None:
        return read_task
    if len(paths) == 1 and volumes.format_of(paths[0]) == "dicom":  # a DICOM series (or study) folder opens
        return read_volumes
    if len(paths) == 1 and _is_scans_folder(Path(paths[0])):
        return read_scans_folder
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return read_other_folder
    return None


def _from_event_loop() -> bool:
    """True when napari's event loop is running this call (a drop, File > Open), not a script or a test body; False
    without a Qt binding (napari used headless: ``ViewerModel().open(path, plugin="napari-volseg")`` in a script)."""
    try:
        from qtpy.QtCore import QThread
        from qtpy.QtWidgets import QApplication
    except ImportError:  # qtpy's QtBindingsNotFoundError is one
        return False

    app = QApplication.instance()
    return app is not None and QThread.currentThread() is app.thread() and QThread.currentThread().loopLevel() > 0


def _session():
    """The current viewer's session when this call comes from its running event loop, else None."""
    if not _from_event_loop():
        return None
    import napari

    from napari_volseg._napari.loading import session_for

    viewer = napari.current_viewer()
    return session_for(viewer) if viewer is not None else None


def _is_scans_folder(path: Path) -> bool:
    """A folder of scans without an MSD ``dataset.json`` (task folders are matched first), as people lay them out:
    scans alone, ``images/`` beside ``labels/``, nnU-Net's ``imagesTr/`` + ``labelsTr/``, ``*_seg`` labels beside
    their scans (:func:`~napari_volseg.io.layouts.detect_layout`)."""
    from napari_volseg.io.layouts import detect_layout

    return detect_layout(path) is not None


def read_scans_folder(path: str | list[str]) -> list[tuple]:
    """A folder of scans without ``dataset.json``: offer to make it a task (nothing opens yet).

    From a drop the offer waits until the drop has finished (the dialog is modal); the task is then written and
    opened in workers of the viewer's session."""
    folder = Path(path if isinstance(path, str) else path[0])
    try:
        from napari_volseg._napari.widgets.new_task import offer  # a dialog: Qt
    except ImportError:  # napari headless, without a Qt binding: nothing to offer it in
        _notify(f"{folder.name} has no dataset.json: `volseg new-task --images {folder}` makes it a task")
        return [(None,)]
    if _from_event_loop():
        from qtpy.QtCore import QTimer

        session = _session()  # the viewer dropped on, not the one current when the timer fires
        QTimer.singleShot(0, lambda: offer(folder, session))
    else:
        offer(folder)
    return [(None,)]


def read_other_folder(path: str | list[str]) -> list[tuple]:
    """A folder that is no task and holds no scans.

    napari-volseg claims every folder in napari's reader preference (so a DICOM series, a task or a folder of scans
    opens in one step, with no Choose-reader dialog), so a folder of something else (TIFF or PNG slices, zarr) is
    handed to napari's own reader, as napari would have offered. What napari cannot read either is one line: a folder
    of task folders names them."""
    folder = Path(path if isinstance(path, str) else path[0])
    tasks = sorted(p.name for p in _subfolders(folder) if decathlon.is_task_folder(p))
    if tasks:
        shown = ", ".join(tasks[:3]) + (", ..." if len(tasks) > 3 else "")
        _notify(f"{folder.name} holds {len(tasks)} task folder(s) ({shown}): drop one of them to open it")
        return [(None,)]
    try:
        import npe2

        layers = npe2.read([str(folder)], stack=False, plugin_name="napari")
    except Exception:  # napari's reader could not read it either (its reasons name its internals)
        layers = None
    if layers:  # said, as the walkthrough's PNG folder opened without a word (and moved the slice slider)
        _notify(
            f"{folder.name} holds no scans napari-volseg reads: opened by napari's own reader, as a stack of images"
        )
        return layers
    _notify(
        f"{folder.name} is not an MSD task folder (no dataset.json) and holds no scans "
        f"({volumes.describe_formats()}) nor images napari reads: nothing to open"
    )
    return [(None,)]


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []


def read_volumes(path: str | list[str]) -> list[tuple]:
    """One layer per file or DICOM series: ``<case>`` for an image, ``<case> ground truth`` for a label file."""
    files = [Path(p) for p in ([path] if isinstance(path, str) else path)]
    session = _session()
    if session is not None:
        from napari_volseg._napari import loading  # the loader's workers need Qt: only with a running viewer

        loading.open_dropped(session, files)
        return [(None,)]
    layers = []
    for file in volumes.distinct_scans(files):
        layers.append(file_layer_data(file))
        for issue in layers[-1][1]["metadata"]["volseg"]["issues"]:
            _notify(issue)
    return layers


def read_task(path: str | list[str]) -> list[tuple]:
    """An MSD task folder: it becomes the session's task, and its first case opens (image plus ground truth)."""
    folder = task_folder_of(path if isinstance(path, str) else path[0])
    session = _session()
    if session is not None:
        from napari_volseg._napari import loading

        loading.open_task(session, folder)
        return [(None,)]
    task = decathlon.load_task(folder)
    return case_layer_data(task, (task.cases or task.test_cases)[0])


def _notify(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


__all__ = [
    "VolsegError",
    "napari_get_reader",
    "read_volumes",
    "read_other_folder",
    "read_scans_folder",
    "read_task",
    "task_folder_of",
]
