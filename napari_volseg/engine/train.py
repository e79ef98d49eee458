"""One network trained on one plan, as a generator of events: :class:`NetTrainer`, nnU-Net's ``run_training`` as
named steps (:meth:`~NetTrainer.prepare`, :meth:`~NetTrainer.setup`, :meth:`~NetTrainer.train_step`,
:meth:`~NetTrainer.validate_and_save`). :class:`~napari_volseg.engine.trainer.Trainer` runs one of them, or a
:class:`~napari_volseg.engine.cascade.Cascade` of two.

Every random choice of step ``s`` (which case, which patch, which augmentation) is drawn from a
generator seeded by ``(seed, s)``, so a resumed run continues exactly where the interrupted one
stopped and two runs with the same seed on the CPU give the same weights.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import torch

from napari_volseg import planning, preprocess
from napari_volseg import postprocess as post
from napari_volseg.cache import PreparedCache
from napari_volseg.config import Preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import distributed, naming
from napari_volseg.engine.device import amp_dtype
from napari_volseg.engine.infer import window_probabilities
from napari_volseg.engine.patches import BatchStream, batch_size, effective_patch, train_case
from napari_volseg.engine.run import (
    EmaWeights,
    Run,
    average_into,
    learning_rate,
    load_fitting,
    stopped_before_training,
    weights_copy,
)
from napari_volseg.errors import VolsegError
from napari_volseg.events import CheckpointSaved, Event, Finished, Progress, Started, Step, Validated
from napari_volseg.losses import make_loss
from napari_volseg.models import build_model, model_config
from napari_volseg.preprocess import Box

log = logging.getLogger(__name__)

VALIDATE_AT_LEAST_EVERY_S = 60.0
"""A run with validation cases validates at the first epoch's end this long after its last save, whatever
``val_every`` says (the heart's main net took 2 minutes for ``val_every`` epochs)."""
FIRST_VALIDATION_S = 30.0
"""... and the first time this long after its first step: a model within the first minute of pressing Train."""


class NetTrainer:
    """One network trained on one plan. ``stage`` tags its events (``"locator"`` in a cascade);
    ``boxes`` crop cases to regions of interest; ``locator`` is stored with its checkpoints;
    ``init`` (fine-tuning) gives the architecture and weights to start from, with a fresh optimizer
    and step count (``resumed`` gives those too)."""

    def __init__(
        self,
        run: Run,
        preset: Preset,
        out: Path,
        plan: planning.Plan,
        *,
        stage: str = "",
        boxes: dict[str, Box] | None = None,
        locator: ckpt.Locator | None = None,
        resumed: ckpt.Checkpoint | None = None,
        init: ckpt.Checkpoint | None = None,
        incumbent: float | None = None,
        publish: Path | None = None,
        warm: dict[str, torch.Tensor] | None = None,
    ):
        self.run = run
        self.preset = preset
        self.out = Path(out)
        self.last = naming.last_path(self.out)
        self.plan = plan
        self.stage = stage
        self.boxes = boxes or {}
        self.locator = locator
        self.resumed = resumed
        self.postprocess = resumed.postprocess if resumed else post.PostProcess()
        """What the checkpoints record for :class:`~napari_volseg.engine.infer.Predictor` to apply:
        decided by every validation, or once from the training labels when there is none."""
        self.init = init
        self.incumbent = incumbent
        """The validation Dice of the model already at ``out`` (a cascade's locator): these weights replace it only
        where they validate better."""
        self.publish = publish
        self.warm = warm
        """Weights to start from (a zoo model's: a warm start): every tensor whose name and shape fit is copied, the
        rest (a head for other classes) starts fresh; None: from scratch."""
        self.warmed = 0
        """How many tensors the warm start copied."""
        """A second file the best weights go to: a cascade's locator is the run's model until the main net validates
        better (a whole scan segmented on its coarse grid)."""
        self.network: torch.nn.Module | None = None
        """The bare network (never the DDP wrapper) once :meth:`setup` has built it."""

    def train(self) -> Generator[Event, None, Finished]:
        """Yield the events of this stage; return its :class:`Finished` (the caller yields it)."""
        prepared = yield from self.prepare()
        if prepared is None:
            return self.unstarted()
        self.setup(*prepared)
        yield Started(
            total_steps=self.total_steps,
            epochs=self.preset.train.epochs,
            device=str(self.run.device),
            train_cases=[c.id for c in self.train_cases],
            val_cases=[c[0].id for c in self.val],
            start_step=self.step,
            batch_size=self.batches.batch_size,
            patch_size=tuple(self.patch),
            stage=self.stage,
        )
        self.loop_start = time.perf_counter()
        self.saved_at = self.loop_start - VALIDATE_AT_LEAST_EVERY_S + FIRST_VALIDATION_S
        stopped = False
        try:
            while self.step < self.total_steps:
                yield self.train_step()
                stopped, out_of_time, due = self.after_step()
                if due:
                    yield from self.validate_and_save(stopped, final=stopped or out_of_time)
                if stopped or out_of_time:
                    break
        finally:
            self.batches.close()
        return self.finish(stopped)

    # -- the named steps --------------------------------------------------------------------------

    def prepare(self) -> Generator[Progress, None, tuple[list, list] | None]:
        """Prepare (or read from the cache) the training and validation cases; None if stopped meanwhile.
        Without validation cases, the post-processing is decided here from the training labels."""
        run = self.run
        if not run.dist.main:
            distributed.barrier(run.dist)  # rank 0 fills the preprocessing cache first
        cache = PreparedCache(self.plan, run.cache_root)
        cases = run.split.train + run.split.val
        rng = np.random.default_rng(self.preset.train.seed)
        train, val = [], []
        for i, case in enumerate(cases):
            prepared = cache.get(case, box=self.boxes.get(case.id))
            if i < len(run.split.train):
                train.append(train_case(case.id, prepared, rng))
            else:
                _, truth = case.load()
                val.append((case, prepared, truth))
            yield Progress(done=i + 1, total=len(cases), item=case.id)
            if run.stop.is_set():
                return None
        if run.dist.main:
            if not val:
                yield Progress(done=len(cases), total=len(cases), item="post-processing from the training labels")
                self.postprocess = run.postprocess_from_labels()
            distributed.barrier(run.dist)
        return train, val

    def setup(self, train: list, val: list) -> None:
        """Build the network, optimizer, loss and batch stream (from the resumed or initial checkpoint if any)."""
        t, resumed, device = self.preset.train, self.resumed, self.run.device
        self.train_cases, self.val = train, val
        torch.manual_seed(t.seed)
        plan, gpu, base = self.plan, device.type == "cuda", resumed or self.init
        config = (
            base.model_config
            if base
            else model_config(self.preset.model, plan.in_channels, plan.num_classes, t.deep_supervision)
        )
        model = build_model(config)
        if base:
            model.load_state_dict(base.state)
        elif self.warm is not None:
            self.warmed = load_fitting(model, self.warm)
        model.to(device)
        self.memory_format = torch.channels_last_3d if t.channels_last else torch.contiguous_format
        model.to(memory_format=self.memory_format)  # before DDP wraps it: its buckets follow the parameters' layout
        if gpu:
            torch.backends.cudnn.benchmark = True
        self.network = model
        self.model = distributed.wrap(model, self.run.dist, device, t.sync_bn)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        if resumed:
            self.optimizer.load_state_dict(resumed.optimizer)
        self.amp_dtype = amp_dtype(device, t.amp)
        self.use_amp = self.amp_dtype is not None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.loss_fn = make_loss(t.loss, t.alpha, deep_supervision=config.deep_supervision > 0)
        weights = self.run.case_weights
        self.patch = effective_patch(t.patch_size, [c.label.shape for c in train], config.divisor)
        self.batches = BatchStream(
            train,
            self.patch,
            batch_size=batch_size(t.batch_size, self.patch, t.batch_voxels),
            fg_fraction=t.fg_fraction,
            seed=t.seed,
            rank=self.run.dist.rank,
            augment=t.augment,
            mirror_axes=t.mirror_axes,
            intensity=t.augment_intensity,
            workers=t.loader_threads if t.loader_threads is not None else (4 if gpu else 0),
            pin_memory=gpu,
            case_weights=[weights.get(c.id, 1.0) for c in train] if weights else None,
        )
        self.ema = EmaWeights(model, t.ema) if t.ema > 0 else None
        if t.compile:
            self.model = torch.compile(self.model)
        # what the checkpoints record: the patch and batch actually trained with
        self.trained = dataclasses.replace(
            self.preset, train=dataclasses.replace(t, patch_size=self.patch, batch_size=self.batches.batch_size)
        )
        self.total_steps = t.epochs * t.iterations_per_epoch
        self.step = resumed.step if resumed else 0
        self.epoch = self.step // t.iterations_per_epoch
        self.history = list(resumed.history) if resumed else []
        self.best = resumed.best_dice if resumed and not math.isnan(resumed.best_dice) else -1.0
        # a resumed run's model file is its own only where it was written as one: a validated run that never
        # validated has none yet (an --out file there is another run's)
        self.best_path = self.out if self.out.is_file() and resumed and (self.best >= 0 or not self.val) else None
        if self.incumbent is not None and self.val and self.out.is_file() and self.incumbent > self.best:
            self.best, self.best_path = self.incumbent, self.out
        self.budget = t.minutes * 60.0 if t.minutes else None
        self.saved_weights: collections.deque = collections.deque(maxlen=max(1, t.average_last - 1))
        """(step, CPU copy of the weights) at the latest saves, for checkpoint averaging at the end."""
        if resumed and t.average_last > 1 and not self.val and not self.stage:  # the save it resumes from counts
            self.saved_weights.append((resumed.step, weights_copy(resumed.state)))

    def train_step(self) -> Step:
        """One optimiser step on the batch of the current step number."""
        t, device = self.preset.train, self.run.device
        epoch = self.step // t.iterations_per_epoch
        self.model.train()
        x, y = self.batches.get(self.step)
        x = x.to(device, non_blocking=True, memory_format=self.memory_format)
        y = y.to(device, non_blocking=True)
        elapsed = time.perf_counter() - self.loop_start
        lr = learning_rate(self.preset, self.step, self.total_steps, epoch, elapsed / self.budget if self.budget else 0)
        lr = distributed.broadcast_float(lr, self.run.dist, device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            loss = self.loss_fn(self.model(x), y)
        if not torch.isfinite(loss):
            raise VolsegError(f"the loss became {loss.item()} at step {self.step}; try a lower learning rate")
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.network)
        self.step += 1
        self.epoch = epoch
        self.loss = float(loss.item())
        seconds = time.perf_counter() - self.run.started
        return Step(step=self.step, epoch=epoch, loss=self.loss, lr=lr, seconds=seconds, stage=self.stage)

    def after_step(self) -> tuple[bool, bool, bool]:
        """``(stopped, out of time, validate and save now)``, agreed by every rank."""
        t, run = self.preset.train, self.run
        now = time.perf_counter()
        out_of_time = self.budget is not None and now - self.loop_start >= self.budget
        end_of_epoch = self.step % t.iterations_per_epoch == 0
        # a validated run is scored at least once a minute, so that Stop leaves a model measured lately
        overdue = bool(self.val) and end_of_epoch and now - self.saved_at >= VALIDATE_AT_LEAST_EVERY_S
        if run.dist.enabled:  # every rank must leave the loop at the same step
            out_of_time = distributed.agree(out_of_time, run.dist, run.device)
            overdue = distributed.agree(overdue, run.dist, run.device)
            if distributed.agree(run.stop.is_set(), run.dist, run.device):
                run.stop.set()
        stopped = run.stop.is_set()
        due = stopped or out_of_time or self.step >= self.total_steps
        due = due or overdue or (end_of_epoch and (self.epoch + 1) % t.val_every == 0)
        return stopped, out_of_time, due

    def validate_and_save(self, stopped: bool, final: bool = False) -> Iterator[Event]:
        """Rank 0 scores the validation cases (unless stopped) and writes the best and last checkpoints; without
        validation the model is the last weights, averaged at the end with the earlier saves' (``average_last``)."""
        self.saved_at = time.perf_counter()
        if self.run.dist.main:
            seconds = time.perf_counter() - self.run.started
            record = {"step": self.step, "epoch": self.epoch, "loss": self.loss, "seconds": seconds}
            self.history.append(record)
            if self.val and not stopped:
                with self.averaged():
                    scores, self.postprocess, ratio = self.validate()
                    mean = float(np.mean(list(scores.values())))
                    record.update(val_dice=mean, val_cases=scores, volume_ratio=round(ratio, 4))
                    yield Validated(
                        step=self.step,
                        epoch=self.epoch,
                        dice=scores,
                        mean=mean,
                        seconds=time.perf_counter() - self.run.started,
                        stage=self.stage,
                        volume_ratio=ratio,
                    )
                    if mean > self.best:
                        self.best = mean
                        yield from self.save_best(best_dice=self.best)
            best = self.best if self.best >= 0 else float("nan")
            # the raw weights, with the optimizer, to resume from
            yield self.saved(self.save(self.last, best_dice=best, optimizer=self.optimizer), "last")
            if not self.val:  # nothing to select on: the latest weights (averaged at the end) are the best we know
                final = final or self.step >= self.total_steps
                with self.averaged():
                    if (
                        final and self.saved_weights
                    ):  # the network that is the model (a cascade's locator: not measured)
                        record["averaged_steps"] = [step for step, _ in self.saved_weights] + [self.step]
                        average_into(self.network, [w for _, w in self.saved_weights])
                    yield from self.save_best()
                    if not final and self.preset.train.average_last > 1 and not self.stage:
                        self.saved_weights.append((self.step, weights_copy(self.network.state_dict())))
        distributed.barrier(self.run.dist)  # rank 0 alone validates and writes

    def averaged(self):
        """Inside the block the network holds the weights' moving average (``ema``), if the preset keeps one."""
        return self.ema.applied(self.network) if self.ema is not None else contextlib.nullcontext()

    def validate(self) -> tuple[dict[str, float], post.PostProcess, float]:
        """Mean foreground Dice per validation case (raw labels), predicted as ``volseg predict`` will
        with this preset, the post-processing they call for, and the predicted over true foreground volume."""
        scores, per_case = {}, []
        infer, device = self.preset.infer, self.run.device
        predicted = true = 0
        for case, prepared, truth in self.val:
            probs = window_probabilities(
                self.network, prepared.image, self.patch, infer, device, self.preset.train.mirror_axes
            )
            labels = preprocess.invert(probs, prepared)
            per_case.append(post.class_dice(labels, truth.data, int(probs.shape[0])))
            scores[case.id] = float(np.mean([raw for raw, _ in per_case[-1].values()]))
            predicted += int(np.count_nonzero(labels))
            true += int(np.count_nonzero(truth.data))
        return scores, post.decide(per_case), predicted / true if true else math.nan

    def save(self, path: Path, **values) -> Path:
        return ckpt.save(
            path,
            self.network,
            self.plan,
            self.run.task.labels,
            preset=self.trained,
            task=self.run.task.name,
            locator=self.locator,
            step=self.step,
            epoch=self.epoch,
            history=self.history,
            postprocess=self.postprocess,
            train_cases=[c.id for c in self.run.split.train],
            train_digests=self.run.train_digests(),
            started_from=self.run.warm_name,
            **values,
        )

    def save_best(self, best_dice: float = float("nan")) -> Iterator[CheckpointSaved]:
        """Write the model file (and the run's model too, where this stage's weights are it: ``publish``)."""
        dice = None if math.isnan(best_dice) else best_dice
        self.best_path = self.save(self.out, best_dice=best_dice)
        yield self.saved(self.best_path, "best", dice=dice)
        if self.publish is not None:
            yield CheckpointSaved(self.save(self.publish, best_dice=best_dice), "best", self.step, dice, self.stage)

    def saved(self, path: Path, kind: str, dice: float | None = None) -> CheckpointSaved:
        kind = f"{self.stage}-{kind}" if self.stage else kind
        return CheckpointSaved(path=path, kind=kind, step=self.step, dice=dice, stage=self.stage)

    def unstarted(self) -> Finished:
        """Stopped while preparing: the model already at ``out`` (the incumbent's) if any."""
        if self.incumbent is None or not self.out.is_file():
            return stopped_before_training(self.run.started)
        seconds = time.perf_counter() - self.run.started
        return Finished(0, self.incumbent, self.out, None, stopped=True, seconds=seconds)

    def finish(self, stopped: bool) -> Finished:
        if self.run.device.type == "cuda":  # give the GPU memory back (the GUI keeps running)
            self.network = self.model = self.optimizer = None
            torch.cuda.empty_cache()
        return Finished(
            step=self.step,
            best_dice=self.best if self.best >= 0 else float("nan"),
            best_path=self.best_path,
            last_path=self.last if self.last.is_file() else None,
            stopped=stopped,
            seconds=time.perf_counter() - self.run.started,
            history=self.history,
        )
