"""User-facing failures and warnings as one napari notification of one line."""

from __future__ import annotations

import functools
import inspect

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_warning

from napari_volseg.errors import VolsegError


def _one_line(message) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else "unknown error"


def notify_error(message) -> None:
    show_error(_one_line(message))


def notify_warning(message) -> None:
    show_warning(_one_line(message))


def background(function):
    """napari's ``thread_worker`` for the plugin's jobs, each of which connects ``errored`` to :func:`notify_error`
    itself. Without ``ignore_errors`` superqt re-raises the error on the GUI thread as well, which napari shows as a
    second error notification and prints with a full traceback (a corrupt file dropped: two identical pop-ups and the
    file's read buffer on the terminal). A generator's ``RuntimeError`` (torch's errors are) becomes a
    :class:`~napari_volseg.errors.VolsegError`: superqt takes a ``RuntimeError`` from a generator for its own quitting
    and ends the worker with neither ``errored`` nor ``finished`` (the widget would wait for ever)."""
    if inspect.isgeneratorfunction(function):
        generator = function

        @functools.wraps(generator)
        def function(*args, **kwargs):
            try:
                return (yield from generator(*args, **kwargs))
            except RuntimeError as exc:
                raise VolsegError(f"{type(exc).__name__}: {exc}") from exc

    return thread_worker(function, ignore_errors=True)
