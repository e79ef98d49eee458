"""Typed events that long-running work yields; each face decides how to show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: the events sit below evaluate
    from napari_volseg.evaluate import CaseResult


@dataclass(frozen=True)
class Started:
    total_steps: int
    epochs: int
    device: str
    train_cases: list[str]
    val_cases: list[str]
    start_step: int = 0
    batch_size: int = 0
    patch_size: tuple[int, ...] = ()
    """The batch and patch actually trained with (patches shrink to small volumes, batches grow)."""
    stage: str = ""
    """``"locator"`` while a cascade trains its coarse locator, else empty."""


@dataclass(frozen=True)
class Step:
    step: int
    epoch: int
    loss: float
    lr: float
    seconds: float
    """Wall-clock seconds since training (re)started."""
    stage: str = ""


@dataclass(frozen=True)
class Validated:
    step: int
    epoch: int
    dice: dict[str, float]
    """Mean foreground Dice per validation case, on the source grid (a classifier: accuracy per class)."""
    mean: float
    seconds: float
    stage: str = ""
    metric: str = "dice"
    """What ``mean`` and ``dice`` measure: ``"dice"``, or ``"accuracy"`` (the 3D classifier, on its test set)."""
    volume_ratio: float | None = None
    """Predicted over true foreground volume on the validation cases (segmentation only)."""


@dataclass(frozen=True)
class CheckpointSaved:
    path: Path
    kind: str
    """``"best"`` or ``"last"`` (a cascade's locator stage: ``"locator-best"``, ``"locator-last"``)."""
    step: int
    dice: float | None = None
    """The validation Dice of a ``best`` checkpoint (None: not validated)."""
    stage: str = ""
    """Which network the file holds: ``""`` (the one net, or a cascade's main net) or ``"locator"`` (a cascade's
    coarse whole-volume net, which is the model until the main net validates better)."""


@dataclass(frozen=True)
class Finished:
    step: int
    best_dice: float
    best_path: Path | None
    last_path: Path | None
    stopped: bool
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def model(self) -> Path | None:
        """The file that is the model after the run, the one rule every face follows: the best (validated) weights
        where the run wrote them (a cascade's locator until its main net validated better; without validation
        cases the last saves averaged), else the last weights of a run stopped before any; None before the first."""
        return self.best_path if self.best_path is not None else self.last_path


@dataclass(frozen=True)
class Failed:
    message: str


@dataclass(frozen=True)
class Progress:
    """Generic progress of a multi-item job (preprocessing, regions of interest, files): ``done`` of ``total``."""

    done: int
    total: int
    item: str = ""


@dataclass(frozen=True)
class CasePredicted:
    """A case predicted (and scored when it has a label): ``done`` of ``total`` cases."""

    done: int
    total: int
    result: CaseResult


@dataclass(frozen=True)
class Downloading:
    """Bytes of a download so far (an MSD task or a model); ``total`` is None when the server does not say."""

    name: str
    done: int
    total: int | None


@dataclass(frozen=True)
class Downloaded:
    """A download is complete and verified: the extracted task folder, or the model file."""

    name: str
    path: Path


Event = Started | Step | Validated | CheckpointSaved | Finished | Failed | Progress | CasePredicted
"""The events of training, preprocessing and prediction."""
