"""Where results go: checked before long work starts, and written atomically.

Every face calls :func:`check_writable` before work begins (a training run's checkpoint, a folder of
predicted labels, a CSV table), so a typo or a read-only folder costs a second, not a 20-minute
run, and nothing is left behind. :func:`atomic_write` writes through a temporary file in the target's
folder and renames it into place, so an interrupted write never leaves a half-written file; a
failing write (disk full, permission) is one :class:`~napari_volseg.errors.OutputError` line.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from napari_volseg.errors import OutputError


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _can_write_in(folder: Path) -> bool:
    if os.access in os.supports_effective_ids:
        return os.access(folder, os.W_OK | os.X_OK, effective_ids=True)
    return os.access(folder, os.W_OK | os.X_OK)


def check_writable(path: str | os.PathLike, *, folder: bool = False, what: str = "output") -> Path:
    """Refuse an output location that cannot be written, before any work (nothing is left behind: a probe file is
    created in the nearest existing folder and removed at once).

    ``folder=False``: ``path`` is a file to create or replace (its folder may not exist yet);
    ``folder=True``: ``path`` is a folder to create or fill. Raises :class:`OutputError` when the
    path is of the other kind, when a file stands where a folder must be, or when the nearest
    existing folder may not be written by this user. ``what`` names the output in the message.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a folder (a new or an existing one)")
    if not folder and path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name inside it")
    existing = _nearest_existing((path if folder else path.parent).absolute())
    if not existing.is_dir():
        raise OutputError(f"cannot write {what} {path}: {existing} is a file, not a folder")
    if not _can_write_in(existing):
        raise OutputError(f"cannot write {what} {path}: no permission to write in {existing}")
    refused = _refuses_new_files(existing)
    if refused is not None:  # what the permission bits do not tell: /proc, /sys, a read-only mount, as root too
        raise OutputError(f"cannot write {what} {path}: {existing} {refused}")
    return path


def _refuses_new_files(folder: Path) -> str | None:
    """Why ``folder`` takes no new file (a probe file is created and removed at once), or None when it does."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".volseg-probe-", dir=folder)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "does not take new files"
        return f"does not take new files ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


def _failed(path: Path, exc: OSError, creating: bool = False) -> OutputError:
    """``creating``: the error came from creating the temporary file beside ``path``."""
    if creating and exc.errno == errno.ENOENT and path.parent.is_dir():  # /proc: it exists, takes no new files
        return OutputError(f"cannot write {path}: {path.parent} does not take new files ({exc.strerror})")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


def _umask() -> int:
    """The process's umask (read by setting it and back: the only way the standard library offers)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_folder(path: Path) -> Path:
    """Give a folder made by ``tempfile.mkdtemp`` (mode 0700) the permissions a ``mkdir`` would have."""
    os.chmod(path, 0o777 & ~_umask())
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``suffix`` ends the temporary name (writers such as nibabel pick the format from it). The
    folder is created if needed. An ``OSError`` becomes :class:`OutputError`; on any failure the
    temporary file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _failed(path, exc, creating=True) from exc
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make every result private to its writer
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _failed(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
