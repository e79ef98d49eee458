"""Opening tasks, cases and dropped files without freezing the viewer.

Each opener reads in a napari ``thread_worker`` (``dataset.json``, NIfTI headers for the Data table, the volumes)
and adds the layers on the GUI thread from the finished arrays. When the user asks again before a read finished
(two row clicks), the last request wins and the stale result is dropped.
"""

from __future__ import annotations

import functools
import itertools
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_volseg._napari.layers import META_KEY, case_layer_data, file_layer_data, labels_layer
from napari_volseg._napari.notify import background, notify_error, notify_warning
from napari_volseg._napari.responsive import AGAIN, in_turns
from napari_volseg._napari.state import CaseInfo, Session
from napari_volseg.errors import SeriesChoiceError, VolsegError
from napari_volseg.io import decathlon, volumes

_tokens = itertools.count(1)


def _start(session: Session, kind: str, status: str, work, on_done: Callable) -> object:
    """Run ``work`` (a thread_worker) and hand its result to ``on_done`` unless a newer ``kind`` request came."""
    token = next(_tokens)
    latest = session.requests
    latest[kind] = token
    session.status.emit(status)
    worker = work()

    def finish(result):
        if latest.get(kind) == token:
            on_done(result)

    def failed(exc):
        if latest.get(kind) == token:
            notify_error(exc if isinstance(exc, VolsegError) else f"{status.rstrip('…')} failed: {exc}")

    worker.returned.connect(finish)
    worker.errored.connect(failed)
    worker.finished.connect(lambda: session.status.emit("") if latest.get(kind) == token else None)
    session.track(worker, loader=True)
    worker.start()
    return worker


def case_info(case: decathlon.Case) -> CaseInfo:
    try:
        geometry = case.geometry()
        return CaseInfo(case.id, geometry.shape_zyx, geometry.spacing_zyx, case.label_path is not None)
    except VolsegError:
        return CaseInfo(case.id, None, None, case.label_path is not None)


def _case_payload(task: decathlon.Task, case_id: str) -> tuple[str, list[tuple], int | None]:
    """Layer data of a case and the slice with the most foreground (None without ground truth); each image layer's
    kwargs carry its data range (``contrast_limits_range``), so reusing a layer computes nothing on the GUI thread."""
    layers = case_layer_data(task, task.case(case_id))
    z = None
    for data, kwargs, kind in layers:
        if kind == "labels":
            z = int(np.argmax((data > 0).sum(axis=(1, 2))))
        elif not isinstance(kwargs["name"], list):
            lo, hi = float(data.min()), float(data.max())
            kwargs["contrast_limits_range"] = (lo, hi if hi > lo else lo + 1.0)
    return case_id, layers, z


def refill(layer, data, kwargs: dict) -> None:
    """Show ``data`` in an existing layer instead of removing it and adding another: napari's layer removal runs a
    full garbage collection and a new layer builds its canvas node, each hundreds of ms on the GUI thread.

    napari re-slices and redraws the layer on every ``scale``, ``translate`` and ``data`` assignment (about 10 ms each
    on the heart under Mesa, cProfile): an unchanged transform is not assigned, and changed ones are assigned with the
    layer hidden meanwhile (napari's public ``visible``: a hidden layer is not re-sliced), so showing it again is the
    layer's only refresh. (napari's private ``Layer._block_refresh``, used before, goes in napari 0.10. A transform
    that moves the viewer's dims range can still make the viewer re-slice its layers once more.)"""
    layer.metadata = kwargs["metadata"]
    moved = {}
    for name in ("scale", "translate"):
        value = np.asarray(kwargs[name], dtype=float)
        if value.shape != np.shape(getattr(layer, name)) or not np.allclose(value, getattr(layer, name)):
            moved[name] = value
    if moved:  # hidden while it moves (a hidden layer is not re-sliced): one refresh, when it shows again
        shown, layer.visible = layer.visible, False
        for name, value in moved.items():
            setattr(layer, name, value)
        layer.data = data
        layer.visible = shown
    else:
        layer.data = data
    layer.name = kwargs["name"]
    if "contrast_limits_range" in kwargs:
        layer.contrast_limits_range = kwargs["contrast_limits_range"]
    if "contrast_limits" in kwargs:
        layer.contrast_limits = kwargs["contrast_limits"]


def _is_kind(layer, kind: str) -> bool:
    """Whether ``layer`` is a napari layer of ``kind`` ("image", "labels"), by its public class."""
    from napari import layers

    return isinstance(layer, {"image": layers.Image, "labels": layers.Labels}.get(kind, type(None)))


def add_layer(viewer, data, kwargs: dict, kind: str):
    """A new layer; an image goes under the labels already shown (two dropped files may finish in either order)."""
    kwargs = {k: v for k, v in kwargs.items() if k != "contrast_limits_range"}
    added = getattr(viewer, f"add_{kind}")(data, **kwargs)
    if kind == "image":
        from napari.layers import Image

        below = next((i for i, layer in enumerate(viewer.layers) if not isinstance(layer, Image)), None)
        for layer in added if isinstance(added, list) else [added]:
            at = viewer.layers.index(layer)
            if below is not None and at > below:
                viewer.layers.move(at, below)
                below += 1
    if isinstance(added, list) and added:  # a scan of several volumes: the one shown is the one selected (set once
        viewer.layers.selection.active = added[0]  # the volumes have moved under the labels)
    return added


def open_task(session: Session, folder: str | Path, open_first_case: bool = True):
    """Read ``folder``'s task and its cases' headers; it becomes the session's task; its first case opens."""
    folder = Path(folder)

    @background
    def work():
        task = decathlon.load_task(folder)
        cases = [case_info(c) for c in task.cases + task.test_cases]
        first = None
        if open_first_case:
            first = _case_payload(task, sorted(c.id for c in (task.cases or task.test_cases))[0])
        return task, cases, first

    def done(result):
        task, cases, first = result
        session.set_task(task, cases)
        if first is not None:
            _show_case(session, *first)

    return _start(session, "task", f"opening {folder.name}…", work, done)


def open_case(session: Session, case_id: str, then: Callable | None = None, keep: tuple[str, ...] = ()):
    """Open a case of the session's task (image and ground truth, other cases' layers reused or removed), then
    ``then()``; layers of the roles in ``keep`` stay for ``then`` to reuse."""
    task = session.task
    if task is None:
        return None
    lost = session.unsaved_work(case_id) if session.unsaved_work else None
    if lost:
        notify_error(lost)
        return None
    if "image" in case_layers(session.viewer, case_id):
        session.requests["case"] = next(_tokens)  # a case still loading from an earlier click must not win
        _show_case(session, case_id, [], None, keep, then)
        return None

    @background
    def work():
        return _case_payload(task, case_id)

    def done(payload):
        if session.task is task:
            _show_case(session, *payload, keep=keep, then=then)

    return _start(session, "case", f"opening {case_id}…", work, done)


DROP_GATHER_MS = 150
"""How long after the last file of a drop its files are read: napari hands the reader one file at a time, running
events between them (its progress bar), so the files of one drop come in over a few ms."""

_drop_timers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def in_session_turns(session: Session, steps, then=None, current=None) -> None:
    """:func:`~napari_volseg._napari.responsive.in_turns` for the session's layers: counted as loading until done,
    and dropped once the viewer's window has closed (a prediction's layers queued then raised "showing the layers
    failed: list index out of range")."""
    alive = (lambda: not session.closed) if current is None else (lambda: not session.closed and current())
    in_turns(steps, then, current=alive, ended=session.adding_layers())


def open_dropped(session: Session, files: list[Path]) -> None:
    """Files of one drop, read together by one worker once the drop has handed them all over: read by a worker each,
    they raced, and whichever finished first went into the viewer first. One worker, one order: the label files,
    then their images, moved under them."""
    from qtpy.QtCore import QTimer

    session.dropped.extend(files)
    timer = _drop_timers.get(session)
    if timer is None:
        timer = _drop_timers[session] = QTimer()
        timer.setSingleShot(True)
        owner = weakref.ref(session)  # the timer, kept by the session's entry, must not keep the session
        timer.timeout.connect(lambda: _read_dropped(owner()))
    timer.start(DROP_GATHER_MS)  # again from now: each file of the drop restarts it


def _read_dropped(session: Session | None) -> None:
    if session is not None and session.dropped:
        open_files(session, _taken(session.dropped))


def _taken(items: list) -> list:
    taken = list(items)
    items.clear()
    return taken


def open_files(session: Session, files: list[Path], series: dict[Path, str] | None = None):
    """Dropped volumes (files, DICOM series folders): ``<case>`` image and ``<case> ground truth`` label layers.

    A folder of several DICOM series asks which one to open (``series`` maps such a folder to the chosen
    SeriesInstanceUID); the other files open meanwhile."""
    chosen = dict(series or {})

    @background
    def work():
        layers, choices = [], []
        for f in volumes.distinct_scans(files):
            try:
                layers.append(file_layer_data(f, chosen.get(f)))
            except SeriesChoiceError as exc:
                choices.append((f, exc.series))
        return layers, choices

    def done(payload):
        layers, choices = payload
        viewer = session.viewer
        for _, kwargs, _ in layers:
            for issue in kwargs["metadata"][META_KEY]["issues"]:
                notify_warning(issue)
        # labels first, the image then moved under them: on the heart, image-first stalled more (bench/gui_latency
        # drop max 438 ms against 250 with labels usually first; drop_profile 225-286 against 128-259)
        layers.sort(key=lambda layer: layer[2] == "image")
        steps = [functools.partial(add_layer, viewer, *layer) for layer in layers]
        in_session_turns(session, steps)
        for folder, listed in choices:
            from napari_volseg._napari.series_dialog import choose_series

            uid = choose_series(folder, listed)
            if uid is not None:
                open_files(session, [folder], {folder: uid})

    name = files[0].name + (f" and {len(files) - 1} more" if len(files) > 1 else "")
    return _start(session, f"files-{next(_tokens)}", f"reading {name}…", work, done)


def open_prediction(session: Session, image: Path, labels: Path):
    """A scan and a prediction of it written by ``volseg predict`` (a cohort's flagged scan): ``<case>`` and
    ``<case> prediction`` (magenta), read in a worker."""

    @background
    def work():
        scan = file_layer_data(image)
        case = scan[1]["metadata"][META_KEY]["case"]
        return [
            scan,
            labels_layer(volumes.read(labels, label=True), f"{case} prediction", case=case, role="prediction"),
        ]

    def done(layers):
        steps = [functools.partial(add_layer, session.viewer, *layer) for layer in layers]
        in_session_turns(session, steps)

    return _start(session, f"files-{next(_tokens)}", f"reading {image.name}…", work, done)


def case_layers(viewer, case_id: str, task_only: bool = True) -> dict[str, object]:
    """The layers of task case ``case_id`` by role (image, ground truth, prediction, errors, preview);
    ``task_only=False`` also finds dropped files' layers of that name (a dropped ``la_004.nii.gz`` is not the task's
    la_004: counted as it, the task's case never opened beside it)."""
    found = {}
    for layer in viewer.layers:
        meta = layer.metadata.get(META_KEY, {})
        if meta.get("case") == case_id and (meta.get("task") or not task_only):
            found[meta.get("role")] = layer
    return found


def _another_task_case(layer, case_id: str | None) -> bool:
    """Whether ``layer`` shows a task case other than ``case_id`` (its image, ground truth or results): only those
    are the plugin's to reuse or remove. Dropped files and their predictions (no task) are the user's and stay
    (opening a task removed them, predictions included, without a word)."""
    meta = layer.metadata.get(META_KEY, {})
    return bool(meta.get("task")) and meta.get("case") not in (None, case_id)


def _other_cases(viewer, case_id: str) -> dict[str, object]:
    """Layers of task cases other than ``case_id`` by role (the last of each role)."""
    found = {}
    for layer in viewer.layers:
        if _another_task_case(layer, case_id):
            found[layer.metadata[META_KEY].get("role")] = layer
    return found


def remove_other_case_layers(viewer, case_id: str | None, keep: tuple[str, ...] = ()) -> Callable[[], object]:
    """An :func:`~napari_volseg._napari.responsive.in_turns` step that removes the layers of cases other than
    ``case_id`` (roles in ``keep`` stay), the topmost first, one per event-loop turn while any is left: each removal
    costs napari a garbage collection and its canvas node (25-60 ms on the heart)."""

    def step():
        for layer in reversed(list(viewer.layers)):
            if _another_task_case(layer, case_id) and layer.metadata[META_KEY].get("role") not in keep:
                viewer.layers.remove(layer)
                return AGAIN
        return None

    return step


def _show_case(session: Session, case_id: str, layers: list[tuple], z: int | None, keep=(), then=None) -> None:
    """Show a case's layers, reusing the layers of the case shown before (same role, same kind), one layer per
    event-loop turn (:func:`~napari_volseg._napari.responsive.in_turns`), then ``then()``. A newer request to show a
    case drops what is left of this one (asking for the same case again does not)."""
    viewer = session.viewer
    session.showing = session.case_id = case_id  # the open case from now on; its layers follow turn by turn
    have = case_layers(viewer, case_id)
    steps = []
    if "image" not in have:
        stale = _other_cases(viewer, case_id)
        for data, kwargs, kind in layers:
            role = kwargs["metadata"][META_KEY]["role"]
            if role in have:
                continue
            old = stale.get(role)
            if old is None or not _is_kind(old, kind) or isinstance(kwargs["name"], list):
                old = None
            steps.append(functools.partial(_place, viewer, case_id, role, old, data, kwargs, kind))
    steps.append(remove_other_case_layers(viewer, case_id, keep))

    def shown():
        if "image" not in have:
            viewer.reset_view()
            image = case_layers(viewer, case_id).get("image")
            if z is not None and image is not None:  # start on the slice with the most foreground
                viewer.dims.set_point(0, image.data_to_world([z, 0, 0])[0])
        _opened(session, case_id)

    # ``then`` (a prediction's layers) in a turn of its own: inside shown's, its first layer's cost piled onto the
    # re-slice of every layer at the new slice, one stall of both (227 ms for a result row clicked on the heart)
    in_session_turns(session, [*steps, shown], then, current=lambda: session.showing == case_id)


def _place(viewer, case_id: str, role: str, old, data, kwargs: dict, kind: str) -> None:
    """One layer of a case being shown, decided when its turn comes: nothing if the case has that role already (the
    same case asked for twice), else refill ``old`` if it is still in the viewer, else a new layer."""
    if role in case_layers(viewer, case_id):
        return
    if old is not None and old in viewer.layers:
        refill(old, data, kwargs)
    else:
        add_layer(viewer, data, kwargs, kind)


def _opened(session: Session, case_id: str) -> None:
    session.case_id = case_id
    session.case_opened.emit(case_id)


def adopt_layer_task(session: Session, layer) -> None:
    """A layer read from a task folder outside the widgets (a script's ``viewer.open``) opens that task."""
    meta = getattr(layer, "metadata", {}).get("volseg", {})
    folder = meta.get("task")
    if folder and (session.task is None or Path(session.task.root).resolve() != Path(folder).resolve()):
        session.case_id = meta.get("case")
        open_task(session, folder, open_first_case=False)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer) -> Session:
    """The one session of a viewer, created on first use; it adopts a task opened from a folder beforehand."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = Session(viewer)
        _SESSIONS[viewer] = session
        menu = getattr(getattr(viewer, "window", None), "main_menu", None)  # napari's public menu bar: lives as long
        if menu is not None:  # as the window, whose closing stops the session's jobs (a closed dock's need not)
            menu.destroyed.connect(session.shutdown)
        layers = getattr(viewer, "layers", None)
        if layers is not None:
            layers.events.inserted.connect(lambda event: adopt_layer_task(session, event.value))
            for layer in list(layers):
                adopt_layer_task(session, layer)
    return session
