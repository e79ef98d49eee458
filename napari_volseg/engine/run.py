"""What one training run's stages share (:class:`Run`), and the small rules around it: the learning-rate
schedule, resuming from a 'last' checkpoint, the end of a run stopped before its first step."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from napari_volseg import planning
from napari_volseg import postprocess as post
from napari_volseg.config import PlanSettings, Preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import distributed
from napari_volseg.errors import VolsegError
from napari_volseg.events import Finished
from napari_volseg.io import volumes
from napari_volseg.io.decathlon import Split, Task


def learning_rate(preset: Preset, step: int, total_steps: int, epoch: int, time_fraction: float = 0.0) -> float:
    t = preset.train
    if t.schedule == "constant":
        return t.lr
    if t.schedule == "step":
        return t.lr * t.step_gamma ** (epoch // max(1, t.step_every))
    if t.schedule == "poly":
        progress = min(1.0, max(step / max(1, total_steps), time_fraction))
        return t.lr * (1.0 - progress) ** 0.9
    raise VolsegError(f"unknown schedule {t.schedule!r}; use poly, step or constant")


def stopped_before_training(started: float) -> Finished:
    """The end of a run stopped before its first step (while preparing, or in a cascade's locator stage)."""
    return Finished(
        step=0,
        best_dice=float("nan"),
        best_path=None,
        last_path=None,
        stopped=True,
        seconds=time.perf_counter() - started,
    )


def resumable(path: Path) -> ckpt.Checkpoint:
    """The 'last' checkpoint at ``path``, checked to hold the optimizer state a resume needs."""
    if not path.is_file():
        raise VolsegError(f"nothing to resume: {path} does not exist")
    resumed = ckpt.load(path)
    if resumed.optimizer is None:
        raise VolsegError(f"{path.name} has no optimizer state; it cannot be resumed")
    return resumed


@dataclass
class Run:
    """What the stages of one training run share: the task and its split, the device, the ranks, the
    Stop flag, the clock (``perf_counter`` at the start), the cache, the training cases' statistics, how
    often each case is drawn (``case_weights``: case id -> weight, default 1) and the post-processing
    their labels call for."""

    task: Task
    split: Split
    device: torch.device
    dist: distributed.DistContext
    stop: threading.Event
    started: float
    cache_root: Path | None = None
    case_weights: dict[str, float] | None = None
    warm: ckpt.Checkpoint | None = None
    """The zoo model a warm start begins from (its name in ``warm_name``); None: from scratch."""
    warm_name: str = ""
    _statistics: planning.TaskStatistics | None = field(default=None, repr=False)
    _label_postprocess: post.PostProcess | None = field(default=None, repr=False)
    _digests: list[str] | None = field(default=None, repr=False)

    def statistics(self, intensities: bool = False) -> planning.TaskStatistics:
        """The training cases' statistics (read once; CT intensities only when a plan first needs them)."""
        if self._statistics is None or (intensities and self._statistics.ct is None):
            self._statistics = planning.statistics(self.task, self.split.train, intensities)
        return self._statistics

    def train_digests(self) -> list[str]:
        """The training scans' file digests (read once, at the first save): what the checkpoint lists so that a
        training scan dropped under another name is known (:meth:`~napari_volseg.engine.provenance.Provenance.trained_on`)."""
        if self._digests is None:
            found = (volumes.file_digest(case.image_path) for case in self.split.train)
            self._digests = [d for d in found if d is not None]
        return self._digests

    def postprocess_from_labels(self) -> post.PostProcess:
        """The post-processing the training labels call for (read once, on their own grids): what a run
        without validation cases stores in its checkpoints."""
        if self._label_postprocess is None:
            labels = (volumes.read(case.label_path).data for case in self.split.train)
            self._label_postprocess = post.from_training_labels(labels, self.task.num_classes)
        return self._label_postprocess

    def plan(self, settings: PlanSettings, extents_mm: tuple[float, float, float] | None = None) -> planning.Plan:
        """The plan of ``settings`` from the training cases (``extents_mm``: a cascade's regions of interest)."""
        stats = self.statistics(planning.measures_intensities(self.task, settings))
        return planning.make_plan(settings, stats, extents_mm)


def weights_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CPU copy of a state dict (a network's weights and buffers)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def average_into(network: torch.nn.Module, earlier: list[dict[str, torch.Tensor]]) -> None:
    """Set the network's floating-point weights and buffers to their mean with ``earlier`` copies (checkpoint
    averaging); counters such as BatchNorm's ``num_batches_tracked`` keep their current value."""
    state = network.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if value.is_floating_point():
                total = value.detach().to("cpu", torch.float64, copy=True)
                for weights in earlier:
                    total += weights[key].to(torch.float64)
                value.copy_((total / (len(earlier) + 1)).to(value.dtype))


class EmaWeights:
    """An exponential moving average of a network's floating-point weights (``decay`` per step, warmed up as
    ``min(decay, (1 + n) / (10 + n))`` after n updates so that a short run is not its initial weights), which
    :meth:`applied` puts in the network for validating and saving. At a high learning rate the raw weights swing from
    one save to the next (the heart's held-out Dice by ±0.04); their average does not."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if key in self.shadow:
                self.shadow[key].mul_(d).add_(value.detach(), alpha=1 - d)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """The averaged weights in ``model`` inside the block, its own weights back after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(own, strict=False)


def load_fitting(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy into ``model`` every tensor of ``state`` with the same name and shape; the number copied."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return len(fitting)
