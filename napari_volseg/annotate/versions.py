"""Model versions of an annotation project: the checkpoints in one folder, read from their headers alone."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import naming

VERSION_PREFIX = "v"
_NUMBERED = re.compile(rf"{VERSION_PREFIX}(\d+)(?:\.locator)?(?:\.last)?\.safetensors")
"""A version's model and its companions (``v002.last.safetensors``, the model in use after a fine-tune stopped before
its first validation): the next version is numbered past all of them, so it never writes over one."""


@dataclass(frozen=True)
class Version:
    """One checkpoint: its validation Dice (NaN when it was trained without validation cases)."""

    path: Path
    best_dice: float
    train_cases: int
    modified: float


def read_version(path: str | os.PathLike) -> Version | None:
    """The version a checkpoint file is, or None when it is not a napari-volseg checkpoint."""
    path = Path(path)
    meta = ckpt.read_meta(path)
    if meta.get("format") != ckpt.FORMAT:
        return None
    try:
        dice = float(json.loads(meta.get("best_dice", "NaN")))
        cases = len(json.loads(meta.get("train_cases", "[]")))
    except (TypeError, ValueError):
        dice, cases = math.nan, 0
    return Version(path=path, best_dice=dice, train_cases=cases, modified=path.stat().st_mtime)


def list_versions(folder: str | os.PathLike) -> list[Version]:
    """The checkpoints in ``folder`` (resumable ``.last`` and cascade ``.locator`` files left out), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.safetensors"):
        if naming.is_companion(path):
            continue
        version = read_version(path)
        if version is not None:
            found.append(version)
    return sorted(found, key=lambda v: (v.modified, v.path.name))


def next_version_path(folder: str | os.PathLike) -> Path:
    """``folder/v001.safetensors``, ``v002``, ...: one past the highest number there."""
    folder = Path(folder)
    taken = [int(m.group(1)) for p in folder.glob("*.safetensors") if (m := _NUMBERED.fullmatch(p.name))]
    return folder / f"{VERSION_PREFIX}{max(taken, default=0) + 1:03d}.safetensors"


def versions_for(
    folder: str | os.PathLike, in_use: str | os.PathLike | None, earlier: tuple[str | os.PathLike, ...] = ()
) -> list[Version]:
    """The model versions to offer: the task's versions in ``folder``, with the models from outside it first: the
    one in use and those used ``earlier`` in the loop (a shipped or trained model it started from stays listed once a
    fine-tuned version is in use, to go back to)."""
    listed = list_versions(folder)
    known = {v.path for v in listed}
    outside = dict.fromkeys(Path(p) for p in (*earlier, in_use) if p and Path(p) not in known)
    return [v for v in (read_version(p) for p in outside if p.is_file()) if v is not None] + listed
