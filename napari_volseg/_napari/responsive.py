"""Keeping napari's GUI thread free: what the plugin does once per process, and layer work split into event-loop turns.

Measured with ``bench/gui_latency.py`` and cProfile on the GUI thread (heart MRI, 2 cores), the stalls left after
moving reading and computing to workers were napari's own:

- **Garbage collection.** napari runs ``gc.collect()`` whenever a layer is removed, and Python runs full
  collections by itself as objects are allocated (in any thread, holding the GIL). With napari, torch and MONAI
  loaded, a full collection walks about 500,000 objects: 240 ms. Removing a labels layer took 270-310 ms, adding one
  about 110 ms. ``gc.freeze()`` once the libraries are loaded moves those long-lived objects out of the collector's
  sight (they stay alive for the process anyway): a removal then took 28-46 ms and an addition about 70 ms.
- **First use.** The first labels layer imports pandas (185 ms) and builds vispy's dash patterns (126 ms); torch's
  first optimizer step imports torch._dynamo and sympy (about 800 modules, whose 130,000 objects every later
  collection walked again). A worker does all of it when the plugin starts, beside the user's first clicks, and the
  objects it made are frozen too.
- **Several layers at once.** An image and a labels layer added in one event-loop turn stall it for the sum of both;
  :func:`in_turns` adds one per turn, so the viewer repaints and takes input between them.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Sequence

WORKER_THREADS = 8
"""Threads of Qt's global pool, where napari's thread workers run (at least)."""

WARM_IMPORTS = (
    "pandas",  # napari imports it for the first labels layer's features table
    "scipy.ndimage",
    "monai.inferers",
    "napari_volseg.engine.train",
    "napari_volseg.engine.infer",
    "napari_volseg.engine.predict",
    "napari_volseg.metrics",
)
"""Modules the plugin's first actions would otherwise import on the GUI thread."""

_prepared = False


def roomy_thread_pool() -> None:
    """Give Qt's global thread pool room for the plugin's workers beside napari's own tasks.

    Qt sizes the pool to the number of cores: on two cores a training and a prediction fill it, and the
    next pooled task (a case loading, napari's own) waits for one of them to end; the viewer froze for
    the whole prediction (13-14 s, bench/gui_latency.py) while training ran. Workers mostly wait on
    torch, which runs its own threads, so more pool threads cost nothing but a little memory."""
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < WORKER_THREADS:
        pool.setMaxThreadCount(WORKER_THREADS)


def warm_up() -> None:
    """Import what the first actions need and build vispy's dash patterns (run in a worker)."""
    import importlib

    for name in WARM_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - warming is an optimisation; the real use reports its own errors
            pass
    try:  # torch's first optimizer step imports torch._dynamo, sympy and ~800 modules more (130,000 objects)
        import torch

        weight = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.Adam([weight])
        weight.sum().backward()
        optimizer.step()
    except Exception:  # noqa: BLE001
        pass
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()  # its patterns are cached module-wide (functools.lru_cache)
    except Exception:  # noqa: BLE001
        pass


def freeze_long_lived(viewer=None) -> bool:
    """Hide every object alive now from the cyclic garbage collector (``gc.freeze``): libraries, modules, the
    viewer. Later full collections (napari runs one per removed layer) then walk only what came after. Only while
    ``viewer`` holds no layers: a frozen layer that napari later removes would never be collected (a cycle), and its
    volume with it. Returns whether it froze."""
    if viewer is not None and len(getattr(viewer, "layers", ())) > 0:
        return False
    gc.freeze()
    return True


def prepare_event_loop(viewer=None) -> None:
    """Once per process, when the plugin's first session starts: room in Qt's thread pool, ``gc.freeze()`` for what
    is loaded already, and a daemon thread that warms the imports and freezes again when done (each freeze only
    while the viewer shows no layers yet). A plain thread, not a Qt worker: a viewer closed while it runs must not
    have a Qt signal to emit into a deleted application."""
    global _prepared
    roomy_thread_pool()
    if _prepared:
        return
    _prepared = True
    freeze_long_lived(viewer)
    ref = weakref.ref(viewer) if viewer is not None else (lambda: None)

    def warm_then_freeze():
        warm_up()
        shown = ref()
        if viewer is None or shown is not None:
            freeze_long_lived(shown)

    threading.Thread(target=warm_then_freeze, name="volseg-warm-up", daemon=True).start()


AGAIN = object()
"""What an :func:`in_turns` step returns to run once more in the next turn (e.g. one removal per turn while any is
left)."""


def in_turns(
    steps: Sequence[Callable[[], object]],
    then: Callable[[], object] | None = None,
    current=None,
    ended: Callable[[], object] | None = None,
) -> None:
    """Run ``steps`` one per event-loop turn (the first at once), then ``then`` in a turn of its own; a step that
    returns :data:`AGAIN` runs again in the next turn. ``current()`` is asked before each: once it says False (a newer
    request came), the rest is dropped. No steps: ``then`` runs at once. ``ended()`` runs once when the chain stops,
    whether done, dropped or failed."""
    from qtpy.QtCore import QTimer

    pending = list(steps) + ([then] if then is not None else [])

    def turn():
        again = False
        try:
            if current is not None and not current():
                return
            try:
                step = pending.pop(0)
                if step() is AGAIN:
                    pending.insert(0, step)
            except Exception as exc:  # noqa: BLE001 - one line for the user, and the rest of this chain is dropped
                from napari_volseg._napari.notify import notify_error

                notify_error(f"showing the layers failed: {exc}")
                return
            if pending:
                QTimer.singleShot(0, turn)
                again = True
        finally:
            if not again and ended is not None:  # done, dropped or failed: the chain stops here, whatever raised
                ended()

    if not pending:
        if ended is not None:
            ended()
        return
    turn()
