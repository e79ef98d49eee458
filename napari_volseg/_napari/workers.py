"""Starting the plugin's workers, wired the one way: a napari progress bar (when the job is named), each yielded
item and the returned value handed on, errors as one notification, the worker kept by the viewer's session (so
closing the viewer, or the widget that owns it, stops it), and ``on_done`` once it has ended and its bar is closed.

The widgets make their jobs with :func:`~napari_volseg._napari.notify.background` and start them here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.utils import progress

from napari_volseg._napari.notify import notify_error
from napari_volseg._napari.state import Session


def start(
    session: Session,
    worker,
    *,
    desc: str | None = None,
    total: int = 0,
    owner=None,
    on_yield: Callable[[Any, Any], None] | None = None,
    on_return: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] = notify_error,
    on_done: Callable[[], None] | None = None,
    loader: bool = False,
    what: str | None = None,
):
    """Start ``worker`` (made by a ``background`` function). ``desc``: a progress bar of ``total`` steps (0: busy);
    ``on_yield(item, bar)`` for each yielded item (``bar`` None without ``desc``); ``on_return(value)``;
    ``on_error(exc)`` (one notification by default); ``on_done()`` after it ended, successful or not. ``owner``: a
    widget whose destruction stops it; ``loader``: one of the session's readers (tasks, cases, dropped files); ``what``:
    the job in a few words, for a closing panel's question (``desc`` by default)."""
    bar = progress(total=total, desc=desc) if desc is not None else None
    alive = [True]  # the owner's widgets: gone once its panel is closed (their callbacks must not run then)
    if owner is not None:
        owner.destroyed.connect(lambda *_: alive.__setitem__(0, False))

    def live(callback):
        return lambda *args: callback(*args) if alive[0] else None

    if on_yield is not None:
        worker.yielded.connect(live(lambda item: on_yield(item, bar)))
    if on_return is not None:
        worker.returned.connect(live(on_return))
    worker.errored.connect(live(on_error))

    def ended() -> None:
        if bar is not None:
            bar.close()
        if on_done is not None and alive[0]:
            on_done()

    worker.finished.connect(ended)
    # what a closing panel names when it asks whether to stop its jobs: the bar's description as it reads now
    worker.volseg_desc = lambda: what or (str(bar.desc).rstrip(": ") if bar is not None else None) or desc
    session.track(worker, owner=owner, loader=loader)
    worker.start()
    return worker


def show_progress(bar, event) -> None:
    """A :class:`~napari_volseg.events.Progress` event (``done`` of ``total``) on a job's progress bar."""
    bar.total, bar.n = event.total, event.done
    bar.refresh()
