"""Which models exist and where: shipped pretrained models, installed ones, a pull index, recent runs.

A model is asked for by name or by path everywhere (``volseg predict --model``, the Predict widget,
``Predictor``); :func:`resolve` is the one place that turns a name into a file.

- **pretrained**: ``napari_volseg/zoo/pretrained/<name>.safetensors``, shipped in the package.
- **installed**: ``paths.models_dir()/<name>.safetensors``, pulled (``volseg pull``) or imported
  (``volseg import --monai-bundle``).
- **index**: models that can be pulled, declared in a JSON index: the one shipped with the package
  (``zoo/index.json``) or one given by ``--index URL|FILE``. Each entry is
  ``{"name", "url", "sha256", "description", "card"?}``.
- **run**: the checkpoints of training runs started from the napari widgets (``paths.runs_dir()``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from napari_volseg import paths
from napari_volseg.engine import naming
from napari_volseg.errors import VolsegError
from napari_volseg.zoo.card import ModelCard, read_card

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
SHIPPED_INDEX = Path(__file__).resolve().parent / "index.json"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RECENT_RUNS = 10


class UnknownModelError(VolsegError):
    """A model was asked for by a name that no registry knows, or that is not installed."""


@dataclass(frozen=True)
class ModelEntry:
    """One model the registry knows; ``path`` is None for an index entry not pulled yet."""

    name: str
    source: str
    """``pretrained``, ``installed``, ``index`` or ``run``."""
    path: Path | None = None
    card: ModelCard | None = None
    url: str = ""
    sha256: str = ""
    description: str = ""
    promptable: bool = False
    """Answers clicks, boxes and scribbles (:mod:`napari_volseg.interactive`), not a whole scan."""

    @property
    def label(self) -> str:
        """How choosers show it: ``msd-heart (pretrained)``, ``spleen (not installed)``."""
        return f"{self.name} ({'not installed' if self.path is None else self.source})"

    @property
    def about(self) -> str:
        """One line: the card's summary, else the index's description."""
        return self.card.summary() if self.card else self.description


def _entry(path: Path, source: str) -> ModelEntry:
    from napari_volseg.engine.checkpoint import read_meta

    promptable = "interactive" in read_meta(path)  # the header alone
    return ModelEntry(path.name[: -len(".safetensors")], source, path, read_card(path), promptable=promptable)


def _entries_in(folder: Path, source: str) -> list[ModelEntry]:
    files = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))
    return [_entry(p, source) for p in files]


def shipped_models() -> list[ModelEntry]:
    """The pretrained models inside the package."""
    return _entries_in(PRETRAINED_DIR, "pretrained")


def installed_models() -> list[ModelEntry]:
    """Models pulled or imported into the user's models folder."""
    return _entries_in(paths.models_dir(), "installed")


def recent_runs(limit: int = RECENT_RUNS) -> list[ModelEntry]:
    """The newest models of widget training runs: each run's model file, or its ``.last`` weights where Stop left
    only those (not a cascade's ``.locator`` files: a locator alone segments nothing)."""
    folder = paths.runs_dir()
    files = [p for p in folder.glob("*.safetensors") if not naming.is_locator(p)]
    models = {p for p in files if not naming.is_last(p)}
    runs = [p for p in files if not naming.is_last(p) or naming.model_of_last(p) not in models]
    runs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [_entry(p, "run") for p in runs[:limit]]


def load_index(index: str | os.PathLike | None = None) -> list[ModelEntry]:
    """The pullable models of an index: the shipped one (``None``), a JSON file, or an ``http(s)://`` URL."""
    text = _read_index(index)
    try:
        data = json.loads(text)
        items = data["models"]
        entries = []
        for item in items:
            name = str(item["name"])
            if not NAME.match(name):
                raise ValueError(f"model name {name!r} is not lower-case letters, digits, '.', '_' or '-'")
            sha = str(item["sha256"]).lower()
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError(f"{name}: sha256 must be 64 hex digits")
            card = ModelCard.from_dict(item["card"]) if item.get("card") else None
            entries.append(
                ModelEntry(name, "index", None, card, str(item["url"]), sha, str(item.get("description", "")))
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise VolsegError(f"model index {index or SHIPPED_INDEX.name} is not valid ({exc})") from exc
    return entries


def _read_index(index: str | os.PathLike | None) -> str:
    if index is None:
        return SHIPPED_INDEX.read_text()
    if str(index).startswith(("http://", "https://")):
        from napari_volseg.io.download import fetch

        with tempfile.TemporaryDirectory() as tmp:
            part = Path(tmp) / "index.json"
            for _ in fetch(str(index), part):
                pass
            return part.read_text()
    try:
        return Path(index).read_text()
    except OSError as exc:
        raise VolsegError(f"cannot read model index {index} ({exc.strerror})") from exc


def list_models(index: str | os.PathLike | None = None, runs: bool = True) -> list[ModelEntry]:
    """Every segmentation model a user can choose: shipped, installed, pullable (not yet installed), recent runs
    (promptable models answer prompts, not scans: :func:`promptable_models` lists them)."""
    entries = shipped_models() + installed_models()
    have = {e.name for e in entries}
    entries += [e for e in load_index(index) if e.name not in have]
    return [e for e in entries + (recent_runs() if runs else []) if not e.promptable]


def promptable_models(runs: bool = True) -> list[ModelEntry]:
    """The shipped, installed and (``runs``) recently trained promptable models."""
    return [e for e in shipped_models() + installed_models() + (recent_runs() if runs else []) if e.promptable]


def resolve(model: str | os.PathLike, index: str | os.PathLike | None = None) -> Path:
    """The file (or MONAI bundle folder) of ``model``: an existing path, else a registered name.

    Shipped names win over installed ones. A name the index knows but that is not installed, and
    an unknown name, raise :class:`UnknownModelError` with one line saying what to do.
    """
    path = Path(model)
    if path.exists():
        return path
    name = str(model)
    for entry in shipped_models() + installed_models():
        if entry.name == name:
            return entry.path
    if os.sep in name or name.endswith((".safetensors", ".pt", ".json")):
        raise UnknownModelError(f"no checkpoint at {path}")
    pullable = [e.name for e in load_index(index)]
    if name in pullable:
        raise UnknownModelError(f"model {name!r} is not installed: run `volseg pull {name}` first")
    known = [e.name for e in shipped_models() + installed_models()] + pullable
    raise UnknownModelError(
        f"{name!r} is neither a file nor a known model (known: {', '.join(known) or 'none'}; see `volseg models`)"
    )
