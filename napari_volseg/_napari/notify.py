"""User-facing failures and warnings as one napari notification of one line."""

from __future__ import annotations

from napari.utils.notifications import show_error, show_warning


def _one_line(message) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else "unknown error"


def notify_error(message) -> None:
    show_error(_one_line(message))


def notify_warning(message) -> None:
    show_warning(_one_line(message))
