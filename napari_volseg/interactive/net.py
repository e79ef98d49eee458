"""The promptable 3D U-Net: an ordinary napari-volseg checkpoint whose metadata holds :class:`Settings`.

Its input is :func:`~napari_volseg.interactive.encode.encode`'s five channels on a ``grid``-cube around the prompts,
its output two classes (background, the object). The checkpoint goes through the zoo, export and fine-tune paths
like any other; :func:`open_net` refuses a task model with one line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from napari_volseg.engine.checkpoint import Checkpoint, CheckpointError
from napari_volseg.interactive.encode import CHANNELS, CLICK_RADIUS, encode
from napari_volseg.interactive.prompts import Prompt
from napari_volseg.interactive.region import Region, from_grid
from napari_volseg.models.onednn import use_onednn


@dataclass(frozen=True)
class Settings:
    """How a promptable net sees a scan. ``grid``: voxels a side of the network's cube; ``min_extent_mm``: the
    smallest region (the typical object it learnt, so one click shows it whole); ``max_extent_mm``: the largest."""

    grid: int = 64
    min_extent_mm: float = 48.0
    max_extent_mm: float = 160.0
    extent_jitter: tuple[float, float] = (0.8, 1.6)
    """Training drew each region's smallest side from ``min_extent_mm`` times this range: the views it knows."""
    channels: tuple[str, ...] = CHANNELS
    click_radius: float = CLICK_RADIUS
    trained_on: list[str] = field(default_factory=list)
    """The structures (``Task02_Heart/left atrium``) and synthetic objects it was trained on."""
    held_out: dict = field(default_factory=dict)
    """Figures on held-out cases from training's own check (Dice after 1 / 3 clicks)."""

    @property
    def grows(self) -> bool:
        """Whether a region may grow (1.5x) where the object goes on past it: only to views training showed."""
        return float(self.extent_jitter[1]) >= 1.5

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["extent_jitter"] = list(self.extent_jitter)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        try:
            settings = cls(**known)
        except TypeError as exc:
            raise CheckpointError(f"unreadable interactive settings ({exc})") from None
        if tuple(settings.channels) != CHANNELS:
            raise CheckpointError(
                f"this interactive model reads channels {list(settings.channels)}; this version gives {list(CHANNELS)}"
            )
        if not (16 <= int(settings.grid) <= 256 and 0 < settings.min_extent_mm <= settings.max_extent_mm):
            raise CheckpointError("unreadable interactive settings (grid or region sizes out of range)")
        return settings


class PromptNet:
    """Answers prompts with a promptable checkpoint: one forward pass per region."""

    @classmethod
    def from_model(cls, model: torch.nn.Module, settings: Settings, name: str = "in training") -> PromptNet:
        """A live (training) network answering prompts, e.g. for training's own held-out check."""
        net = cls.__new__(cls)
        net.settings, net.checkpoint, net.name = settings, None, name
        net.net = use_onednn(model)
        return net

    def __init__(self, checkpoint: Checkpoint, name: str = ""):
        if checkpoint.interactive is None:
            what = checkpoint.path.name if checkpoint.path is not None else "this checkpoint"
            raise CheckpointError(
                f"{what} is a segmentation model, not an interactive one: choose a '-interactive' model "
                "or 'random-walker'"
            )
        self.settings = Settings.from_dict(checkpoint.interactive)
        self.checkpoint = checkpoint
        self.name = name or (checkpoint.path.stem if checkpoint.path is not None else "interactive")
        net = checkpoint.build_model().eval()
        self.net = use_onednn(net).to(memory_format=torch.channels_last_3d)

    @property
    def grid(self) -> int:
        return int(self.settings.grid)

    @property
    def grows(self) -> bool:
        return self.settings.grows

    @property
    def min_extent_mm(self) -> float:
        return float(self.settings.min_extent_mm)

    @property
    def max_extent_mm(self) -> float:
        return float(self.settings.max_extent_mm)

    def segment(
        self, image: np.ndarray, region: Region, prompts: list[Prompt], previous: np.ndarray | None
    ) -> np.ndarray:
        x = encode(image, region, prompts, previous)[None].contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            logits = self.net(x)
        return from_grid(logits[0], region)
