"""Pull a model named in an index into the user's models folder: resumable, SHA-256 verified.

The transfer is :func:`napari_volseg.io.download.download_file`'s (typed events, as every download): ``<name>.safetensors.part``
grows (and resumes with an HTTP range request after an interruption); the file takes its final
name only when its SHA-256 matches the index, so a model that fails its checksum is never loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from napari_volseg import paths
from napari_volseg.events import Downloaded, Downloading
from napari_volseg.io.download import download_file
from napari_volseg.zoo.registry import UnknownModelError, load_index


def pull(
    name: str, index: str | os.PathLike | None = None, timeout: float = 30.0
) -> Iterator[Downloading | Downloaded]:
    """Download model ``name`` from ``index`` (default: the shipped index): :class:`Downloading`
    events, then one :class:`Downloaded` naming the installed file."""
    entries = {e.name: e for e in load_index(index)}
    if name not in entries:
        known = ", ".join(entries) or "none"
        raise UnknownModelError(f"the model index has no {name!r} (it lists: {known})")
    entry = entries[name]
    dest = paths.models_dir() / f"{name}.safetensors"
    yield from download_file(entry.url, dest, entry.sha256, timeout=timeout)
