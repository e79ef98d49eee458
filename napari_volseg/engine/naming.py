"""The one home of checkpoint file names: a widget run's model file, a run's resumable last weights and a cascade's
locator beside it, and which files are such companions rather than models of their own."""

from __future__ import annotations

import time
from pathlib import Path

SUFFIX = ".safetensors"
COMPANIONS = (".last" + SUFFIX, ".locator" + SUFFIX, ".locator.last" + SUFFIX)
"""The endings of the files a run writes beside its model."""


def _stem(path: Path) -> str:
    return path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name


def run_path(folder: Path, name: str) -> Path:
    """A new run's model file in ``folder``: ``<name>-<YYYYmmdd-HHMMSS>.safetensors`` (the widgets' runs)."""
    return Path(folder) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}{SUFFIX}"


def is_last(path: Path) -> bool:
    """A run's resumable last weights (``NAME.last.safetensors``)."""
    return Path(path).name.endswith(".last" + SUFFIX)


def is_locator(path: Path) -> bool:
    """A cascade's locator stage (``NAME.locator.safetensors`` and its last weights): it segments nothing alone."""
    return ".locator." in Path(path).name


def model_of_last(last: Path) -> Path:
    """The model file whose resumable last weights ``last`` holds."""
    last = Path(last)
    return last.with_name(last.name.replace(".last" + SUFFIX, SUFFIX))


def is_companion(path: Path) -> bool:
    """A run's last weights or a cascade's locator: not a model to list on its own."""
    return Path(path).name.endswith(COMPANIONS)


def locator_path(best: Path) -> Path:
    """Where a cascade run keeps its locator stage's own (best) checkpoint."""
    best = Path(best)
    return best.with_name(f"{_stem(best)}.locator{SUFFIX}")


def last_path(best: Path) -> Path:
    """Where the resumable 'last' checkpoint of a run whose best checkpoint is ``best`` lives."""
    best = Path(best)
    return best.with_name(f"{_stem(best)}.last{SUFFIX}")
