"""A coarse-to-fine cascade as two ordinary trainers, for scans that do not fit the voxel budget whole.

First a locator net is trained for ``locator_fraction`` of the budget on whole volumes resampled to
a coarse grid of ``locator_voxels``; it finds the region of interest. Then the main net is trained
for the rest of the budget inside regions of interest grown by ``roi_margin_mm``: the training
cases' from their ground truth, the validation cases' from the locator (so validation scores the
whole cascade, as prediction runs it). The main checkpoints carry the locator, so one file predicts. Until the main
net validates better, the locator's own best weights are the run's model at ``out``: a coarse whole-scan model, so
that Stop from the locator's first validation on (30 s of training) leaves a model that segments (the heart's main
net took over from minute 3-5 of a 10-minute run; its first weights marked the whole chest). Regions of interest are
capped at 1.5 times the longest training box, so a locator that marks too much costs the main net no more than that.
Both stages are :class:`~napari_volseg.engine.train.NetTrainer`\\ s; the locator's events carry
``stage="locator"`` and its checkpoints (``NAME.locator.safetensors``, ``NAME.locator.last.safetensors``)
let a run stopped in either stage resume there. Fine-tuning a cascade (``init_from``) keeps its
locator and plan and gives the main net the whole budget (the locator's ``one_piece`` is decided again where the new
training cases are fully labelled).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
import torch

from napari_volseg import planning, preprocess
from napari_volseg import postprocess as post
from napari_volseg.config import Preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import naming
from napari_volseg.engine.infer import locate
from napari_volseg.engine.run import Run, resumable, stopped_before_training
from napari_volseg.engine.train import NetTrainer
from napari_volseg.errors import VolsegError
from napari_volseg.events import Event, Finished, Progress
from napari_volseg.io import volumes
from napari_volseg.preprocess import Box

MAX_EXTENT_FACTOR = 1.5
"""How much longer than the longest training box a region of interest may be (:attr:`Locator.max_extent_mm`)."""


def largest_extent(boxes: dict, train: dict, spacings: list) -> tuple[float, float, float] | None:
    """:data:`MAX_EXTENT_FACTOR` times the longest training box along each axis (mm); None without boxes."""
    extents = [
        [(b - a) * s for (a, b), s in zip(boxes[case_id], spacing, strict=True)]
        for case_id, spacing in zip(train, spacings, strict=True)
        if boxes.get(case_id) is not None
    ]
    if not extents:
        return None
    return tuple(float(MAX_EXTENT_FACTOR * e) for e in np.max(extents, axis=0))


class Cascade:
    """Train a cascade's locator, then its main net, into ``out`` (resuming whichever stage was stopped)."""

    def __init__(
        self, run: Run, preset: Preset, out: Path, *, resume: bool = False, init_from: ckpt.Checkpoint | None = None
    ):
        self.run = run
        self.preset = preset
        self.out = Path(out)
        self.resume = resume
        self.init_from = init_from
        self.locator_preset, self.main_preset = planning.stage_presets(preset)
        if init_from is not None:  # no locator to train: the main net has the whole budget
            self.main_preset = preset
        self.current: NetTrainer | None = None
        self.incumbent: Finished | None = None
        """How the locator stage ended; its ``best_path`` is ``out`` where its weights were published as the model."""

    @property
    def network(self) -> torch.nn.Module | None:
        return self.current.network if self.current is not None else None

    def train(self) -> Generator[Event, None, Finished]:
        resumed = locator_resumed = None
        if self.resume:
            last, locator_last = naming.last_path(self.out), naming.last_path(naming.locator_path(self.out))
            if locator_last.is_file() and not last.is_file():
                locator_resumed = resumable(locator_last)  # stopped while the locator trained: carry on with it
            else:
                resumed = resumable(last)
        base = resumed or self.init_from
        locator = base.locator if base else None
        if locator is None:
            locator = yield from self.train_locator(locator_resumed)
            if locator is None:
                return self.stopped_early()
        located = yield from self.roi_boxes(locator)
        if located is None:
            return self.stopped_early()
        boxes, locator = located
        if base:
            plan = base.plan
        else:  # the voxel budget is spent on the regions of interest, not whole volumes
            spacings = dict(zip([c.id for c in self.run.split.train], self.run.statistics().spacings, strict=True))
            plan = self.run.plan(self.main_preset.plan, planning.roi_extents(boxes, spacings))
        self.current = NetTrainer(
            self.run,
            self.main_preset,
            self.out,
            plan,
            boxes=boxes,
            locator=locator,
            resumed=resumed,
            init=self.init_from,
            incumbent=self.incumbent.best_dice if self.incumbent else None,
            warm=self.run.warm.state if self.run.warm is not None else None,
        )
        return (yield from self.current.train())

    def stopped_early(self) -> Finished:
        """Stopped before the main net trained: the locator's model if it was published, else its last weights (not
        validated yet: a coarse whole-scan model all the same), else no model."""
        done = self.incumbent
        if done is None or (done.best_path is None and done.last_path is None):
            return stopped_before_training(self.run.started)
        return dataclasses.replace(done, stopped=True, seconds=time.perf_counter() - self.run.started)

    def train_locator(self, resumed: ckpt.Checkpoint | None) -> Generator[Event, None, ckpt.Locator | None]:
        """Train the coarse locator; return it, or None if the run was stopped. Its best weights are also the run's
        model at ``out`` (:attr:`incumbent`) until the main net validates better: it segments whole scans on its
        coarse grid, so Stop after its first validation leaves a usable model (the main net's first saves
        predicted false positives over the whole chest)."""
        path = naming.locator_path(self.out)
        plan = resumed.plan if resumed else self.run.plan(self.locator_preset.plan)
        warm = self.run.warm
        self.current = NetTrainer(
            self.run,
            self.locator_preset,
            path,
            plan,
            stage="locator",
            resumed=resumed,
            publish=self.out,
            warm=(warm.locator.state if warm.locator else warm.state) if warm is not None else None,
        )
        finished = yield from self.current.train()
        published = finished.best_path is not None and self.out.is_file()
        self.incumbent = dataclasses.replace(finished, best_path=self.out if published else None)
        if finished.stopped:
            return None
        if not path.is_file():  # under torchrun rank 0 wrote it before the ranks' last barrier
            raise VolsegError(f"the cascade's locator stage ended without writing {path.name}")
        return ckpt.load(path).as_locator(self.preset.plan.roi_margin_mm)

    def roi_boxes(
        self, locator: ckpt.Locator
    ) -> Generator[Progress, None, tuple[dict[str, Box | None], ckpt.Locator] | None]:
        """Regions of interest by case: training cases' from their ground truth, validation cases' from
        the locator (``None``: nothing found, the whole volume is used), and the locator with its ``one_piece``
        decided from the fully labelled training cases (:func:`~napari_volseg.postprocess.one_piece`; without any,
        as when fine-tuning on sparse annotations, the locator keeps what it had). None if the run was stopped
        meanwhile (Stop is honoured after each case: reading 15 heart labels took 2-3 s)."""
        run = self.run
        cases = run.split.train + run.split.val
        model = locator.build_model().to(run.device)
        boxes = {}
        pieces = []
        for i, case in enumerate(cases):
            if i < len(run.split.train):
                truth = volumes.read(case.label_path)
                annotated_fg = (truth.data > 0) & (truth.data != case.unlabelled)  # sparse: not unlabelled voxels
                boxes[case.id] = preprocess.roi_box(annotated_fg, truth.spacing, locator.margin_mm)
                if not case.sparse:
                    pieces.append(post.count_pieces(annotated_fg))
                if i == len(run.split.train) - 1:
                    decided = post.one_piece(pieces)
                    if decided is not None:
                        locator = dataclasses.replace(locator, one_piece=decided)
                    longest = largest_extent(boxes, {c.id: c for c in run.split.train}, run.statistics().spacings)
                    if longest is not None:
                        locator = dataclasses.replace(locator, max_extent_mm=longest)
            else:
                image, _ = case.load()
                boxes[case.id] = locate(model, locator, image, self.preset.infer, run.device)
            yield Progress(done=i + 1, total=len(cases), item=f"region of interest: {case.id}")
            if run.stop.is_set():
                return None
        return boxes, locator
