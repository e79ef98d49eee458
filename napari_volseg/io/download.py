"""Checksummed, resumable downloads: Medical Segmentation Decathlon tasks and single files (models).

The tarballs and MD5 sums are the ones MONAI's ``DecathlonDataset`` uses. A download goes to
``<dest>/<task>.tar.part``, resumes with an HTTP range request when the server allows it, is
verified, and is extracted into a temporary folder that is renamed into place only when every
member was safe (no absolute paths, no ``..``, no links or device files). A task folder that is
already complete is not downloaded again. :func:`download_task` is a generator of typed events
(bytes so far, then the folder), so that every face shows progress its own way.
:func:`download_file` fetches one file the same way (``<dest>.part``, HTTP range resume) and
verifies its SHA-256 before it takes its final name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from napari_volseg.errors import DownloadError, TaskFormatError
from napari_volseg.events import Downloaded, Downloading
from napari_volseg.io.decathlon import load_task
from napari_volseg.outputs import check_writable
from napari_volseg.paths import MSD_BASE_URL

MSD_MD5 = {
    "Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
    "Task02_Heart": "06ee59366e1e5124267b774dbd654057",
    "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
    "Task04_Hippocampus": "9d24dba78a72977dbd1d2e110310f31b",
    "Task05_Prostate": "35138f08b1efaef89d7424d2bcc928db",
    "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc",
    "Task07_Pancreas": "4f7080cfca169fa8066d17ce6eb061e4",
    "Task08_HepaticVessel": "641d79e80ec66453921d997fbf12a29c",
    "Task09_Spleen": "410d4a301da4e5b2f6f86ec3ddba524e",
    "Task10_Colon": "bad7a188931dc2f6acf72b08eb6202d0",
}
CHUNK = 1 << 20


def task_url(task: str, base_url: str = MSD_BASE_URL) -> str:
    return f"{base_url.rstrip('/')}/{task}.tar"


def is_complete(folder: Path) -> bool:
    """True when ``folder`` is an MSD task whose ``dataset.json`` files all exist."""
    try:
        load_task(folder)
    except TaskFormatError:
        return False
    return True


def download_task(
    task: str,
    dest: str | os.PathLike,
    *,
    base_url: str = MSD_BASE_URL,
    md5: str | None = None,
    timeout: float = 30.0,
) -> Iterator[Downloading | Downloaded]:
    """Fetch ``<base_url>/<task>.tar`` into ``dest``: :class:`Downloading` events as bytes arrive, then
    one :class:`Downloaded` naming the extracted task folder.

    ``md5`` defaults to the known sum of an MSD task; an unknown task name needs one given.
    Raises :class:`DownloadError` with one line for every failure; a corrupt download is
    deleted, an interrupted one is kept as ``.part`` and resumed next time.
    """
    dest = Path(dest)
    folder = dest / task
    if is_complete(folder):
        yield Downloaded(task, folder)
        return
    check_writable(dest, folder=True, what="download folder")
    expected = md5 or MSD_MD5.get(task)
    if expected is None:
        raise DownloadError(
            f"no checksum known for {task!r}; pass its md5 (volseg download --md5, or md5= in Python) for a task outside the MSD ten"
        )
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest / f"{task}.tar"
    if not (tar_path.is_file() and file_digest(tar_path, "md5") == expected):
        part = dest / f"{task}.tar.part"
        for done, total in fetch(task_url(task, base_url), part, timeout):
            yield Downloading(task, done, total)
        got = file_digest(part, "md5")
        if got != expected:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{task}.tar failed its checksum (md5 {got}, expected {expected}); deleted, try again")
        os.replace(part, tar_path)
    try:
        extract_safely(tar_path, dest, task)
        if not is_complete(folder):
            raise DownloadError(f"{tar_path.name} did not contain a complete {task} task folder")
    finally:
        tar_path.unlink(missing_ok=True)  # extracted, or refused: either way it is not kept
    yield Downloaded(task, folder)


def download_file(
    url: str, dest: str | os.PathLike, sha256: str, timeout: float = 30.0
) -> Iterator[Downloading | Downloaded]:
    """Fetch ``url`` to ``dest`` through ``dest.part`` (resumed when present): :class:`Downloading`
    events, then one :class:`Downloaded` naming ``dest``.

    ``dest`` appears only once its SHA-256 equals ``sha256``. A file that fails is moved to
    ``dest.corrupt`` (the next attempt starts over) and a one-line :class:`DownloadError` says so.
    A ``dest`` already present with the right checksum is not fetched again.
    """
    dest = Path(dest)
    expected = sha256.lower()
    if not (dest.is_file() and file_digest(dest, "sha256") == expected):
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        for done, total in fetch(url, part, timeout):
            yield Downloading(dest.name, done, total)
        got = file_digest(part, "sha256")
        if got != expected:
            quarantine = dest.with_name(dest.name + ".corrupt")
            os.replace(part, quarantine)
            raise DownloadError(
                f"{dest.name} failed its checksum (sha256 {got[:12]}…, expected {expected[:12]}…); "
                f"not used, moved to {quarantine}"
            )
        os.replace(part, dest)
    yield Downloaded(dest.name, dest)


def fetch(url: str, part: Path, timeout: float = 30.0) -> Iterator[tuple[int, int | None]]:
    """Append ``url``'s bytes to ``part`` from where it ends (HTTP range), or start over if the server
    ignores ranges; yields (bytes done, total bytes or None) per chunk."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole
            return
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}); are you offline?") from exc
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        done = have
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    yield done, total
        except (TimeoutError, OSError, ConnectionError) as exc:
            raise DownloadError(f"download of {url} broke off at {done} bytes ({exc}); run again to resume") from exc
    if total is not None and done != total:
        raise DownloadError(f"download of {url} broke off at {done} of {total} bytes; run again to resume")


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest (``"md5"``, ``"sha256"``) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_member(member: tarfile.TarInfo, archive: str) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise DownloadError(f"{archive} is unsafe: member {member.name!r} would land outside the target folder")
    if member.issym() or member.islnk():
        raise DownloadError(f"{archive} is refused: member {member.name!r} is a link")
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"{archive} is refused: member {member.name!r} is not a regular file or folder")


def extract_safely(tar_path: Path, dest: Path, task: str) -> Path:
    """Extract ``tar_path`` into ``dest`` after checking every member; returns ``dest / task``.

    Extraction happens in a hidden temporary folder that replaces ``dest / task`` only on
    success, so a refused or broken archive leaves nothing behind. macOS ``._`` files are skipped.
    """
    staging = dest / f".{task}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            with tarfile.open(tar_path) as tar:
                members = [m for m in tar.getmembers() if not PurePosixPath(m.name).name.startswith("._")]
                for m in members:
                    _check_member(m, tar_path.name)
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DownloadError(f"{tar_path.name} is not a readable tar archive ({exc})") from exc
        inner = staging / task
        if not inner.is_dir():
            raise DownloadError(f"{tar_path.name} has no top-level {task}/ folder")
        final = dest / task
        shutil.rmtree(final, ignore_errors=True)
        os.replace(inner, final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)
