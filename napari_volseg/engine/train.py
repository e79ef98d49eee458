"""Patch-based training as a generator of events.

``Trainer(task, preset, out).run()`` yields :mod:`~napari_volseg.engine.events`; ``stop()`` (from
any thread) ends the run at the next step, after writing the 'last' checkpoint. Every random
choice of step ``s`` (which case, which patch, which augmentation) is drawn from a generator
seeded by ``(seed, s)``, so a resumed run continues exactly where the interrupted one stopped and
two runs with the same seed on the CPU give the same weights.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from napari_volseg import postprocess as post
from napari_volseg import preprocess
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import distributed
from napari_volseg.engine.config import Preset
from napari_volseg.engine.events import CheckpointSaved, Event, Failed, Finished, Progress, Started, Step, Validated
from napari_volseg.engine.infer import locate, resolve_device, set_threads, window_probabilities
from napari_volseg.engine.patches import BatchStream, effective_patch, train_case
from napari_volseg.errors import VolsegError
from napari_volseg.io import nifti
from napari_volseg.io.decathlon import Case, Task
from napari_volseg.losses import make_loss
from napari_volseg.models import build_model, model_config

log = logging.getLogger(__name__)


def _stopped_before_training(started: float) -> Finished:
    return Finished(
        step=0,
        best_dice=float("nan"),
        best_path=None,
        last_path=None,
        stopped=True,
        seconds=time.perf_counter() - started,
    )


def batch_size(base: int, patch: tuple[int, ...], batch_voxels: int | None, most: int = 16) -> int:
    """``base`` patches per step, or more (up to ``most``) while they stay within ``batch_voxels``."""
    if not batch_voxels:
        return base
    return max(base, min(most, int(batch_voxels) // int(np.prod(patch))))


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


class Trainer:
    """Train ``preset`` on ``task``; the best checkpoint goes to ``out``, the resumable last one beside it."""

    def __init__(
        self,
        task: Task,
        preset: Preset,
        out: str | Path,
        *,
        resume: bool = False,
        cache_root: Path | None = None,
        train_cases: list[Case] | None = None,
        val_cases: list[Case] | None = None,
    ):
        self.task = task
        self.preset = preset
        self.out = Path(out)
        self.last = ckpt.last_path(self.out)
        self.resume = resume
        self.cache_root = cache_root
        self._stop = threading.Event()
        self.dist = distributed.env_context()
        self.network: torch.nn.Module | None = None
        """The trained network (CPU runs) once ``run()`` has built it."""
        t = preset.train
        if train_cases is None:
            split = task.split(mode=t.split, seed=t.seed, val_cases=t.val_cases)
            train_cases, val_cases = split.train, split.val
        self.train_cases = list(train_cases)
        self.val_cases = list(val_cases or [])
        if not self.train_cases:
            raise VolsegError("no training cases")

    def stop(self) -> None:
        """Ask the run to end at the next step; the last checkpoint is written first."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> Iterator[Event]:
        """Yield events until the run ends; under torchrun only rank 0's events carry logs."""
        try:
            yield from self._run()
        except VolsegError as exc:
            yield Failed(str(exc))
        except MemoryError:
            yield Failed("out of memory: use a smaller patch size or batch size, or a coarser spacing preset")
        except torch.OutOfMemoryError:
            yield Failed("out of GPU memory: use a smaller patch size or batch size, or --device cpu")
        except Exception as exc:  # a bug: keep the traceback in the log, show one line
            log.exception("training failed")
            yield Failed(f"training failed: {type(exc).__name__}: {exc}")
        finally:
            distributed.shutdown(self.dist)

    # -- the loop -------------------------------------------------------------------------------

    def _plan(self, resumed: ckpt.Checkpoint | None, boxes: dict | None) -> preprocess.Plan:
        if resumed is not None:
            return resumed.plan
        extents = None
        if boxes:  # a cascade: the voxel budget is spent on the regions of interest, not whole volumes
            spacings = {c.id: c.geometry().spacing_zyx for c in self.train_cases}
            extents = np.median(
                [[(b - a) * sp for (a, b), sp in zip(boxes[k], spacings[k], strict=True)] for k in spacings], axis=0
            )
        return preprocess.plan_from_settings(self.task, self.preset.plan, cases=self.train_cases, extents_mm=extents)

    # -- a cascade's locator stage ----------------------------------------------------------------

    def _locator_preset(self) -> Preset:
        s, t = self.preset.plan, self.preset.train
        return dataclasses.replace(
            self.preset,
            plan=preprocess.locator_settings(s),
            train=dataclasses.replace(
                t,
                minutes=t.minutes * s.locator_fraction if t.minutes else None,
                epochs=max(1, round(t.epochs * s.locator_fraction)),
            ),
        )

    def _train_locator(self, resume: bool) -> Iterator[Event]:
        """Train the coarse locator (events tagged ``stage="locator"``); returns it, or None if stopped."""
        inner = Trainer(
            self.task,
            self._locator_preset(),
            ckpt.locator_path(self.out),
            resume=resume,
            cache_root=self.cache_root,
            train_cases=self.train_cases,
            val_cases=self.val_cases,
        )
        inner._stop = self._stop  # one stop() ends either stage
        finished = None
        for event in inner._run():
            if isinstance(event, Finished):
                finished = event
            elif isinstance(event, CheckpointSaved):
                yield dataclasses.replace(event, kind=f"locator-{event.kind}")
            elif isinstance(event, Started | Step | Validated):
                yield dataclasses.replace(event, stage="locator")
            else:
                yield event
        if finished is None or finished.stopped:
            return None
        path = ckpt.locator_path(self.out)  # under torchrun rank 0 wrote it before the ranks' last barrier
        if not path.is_file():
            raise VolsegError(f"the cascade's locator stage ended without writing {path.name}")
        return ckpt.load(path).as_locator(self.preset.plan.roi_margin_mm)

    def _roi_boxes(self, locator: ckpt.Locator, device: torch.device) -> Iterator[Event | dict]:
        """Regions of interest: training cases' from their ground truth, validation cases' from the
        locator (so validation scores the whole cascade, as prediction will run it)."""
        boxes = {}
        cases = self.train_cases + self.val_cases
        model = locator.build_model().to(device)
        for i, case in enumerate(cases):
            if i < len(self.train_cases):
                truth = nifti.load(case.label_path)
                boxes[case.id] = preprocess.roi_box(truth.data > 0, truth.spacing, locator.margin_mm)
            else:
                image, _ = case.load()
                boxes[case.id] = locate(model, locator, image, self.preset.infer, device)
            yield Progress(done=i + 1, total=len(cases), item=f"region of interest: {case.id}")
        yield boxes

    def _prepare(self, plan: preprocess.Plan, boxes: dict | None = None) -> Iterator[Event | tuple]:
        cache = preprocess.PreparedCache(plan, self.cache_root)
        cases = self.train_cases + self.val_cases
        rng = np.random.default_rng(self.preset.train.seed)
        train, val = [], []
        for i, case in enumerate(cases):
            prepared = cache.get(case, box=(boxes or {}).get(case.id))
            if i < len(self.train_cases):
                train.append(train_case(case.id, prepared, rng))
            else:
                _, truth = case.load()
                val.append((case, prepared, truth))
            yield Progress(done=i + 1, total=len(cases), item=case.id)
        yield (train, val)

    def _run(self) -> Iterator[Event]:
        t = self.preset.train
        started = time.perf_counter()
        set_threads(t.threads)
        device = resolve_device(t.device)
        torch.manual_seed(t.seed)
        cascade = preprocess.needs_cascade(self.task, self.preset.plan, self.train_cases)
        resumed = None
        resume_locator = False
        if self.resume:
            if self.last.is_file():
                resumed = ckpt.load(self.last)
                if resumed.optimizer is None:
                    raise VolsegError(f"{self.last.name} has no optimizer state; it cannot be resumed")
            elif cascade and ckpt.last_path(ckpt.locator_path(self.out)).is_file():
                resume_locator = True  # stopped while the locator trained: carry on with it
            else:
                raise VolsegError(f"nothing to resume: {self.last} does not exist")
        device = distributed.init(self.dist, device)
        locator = resumed.locator if resumed else None
        if cascade and locator is None:
            locator = yield from self._train_locator(resume_locator)
            if locator is None:
                yield _stopped_before_training(started)
                return
        boxes = None
        if locator is not None:
            frac = self.preset.plan.locator_fraction  # the main stage gets the rest of the time (or epochs)
            t = dataclasses.replace(
                t,
                minutes=t.minutes * (1 - frac) if t.minutes else None,
                epochs=max(1, t.epochs - round(t.epochs * frac)),
            )
            for item in self._roi_boxes(locator, device):
                if isinstance(item, dict):
                    boxes = item
                else:
                    yield item
        plan = self._plan(resumed, boxes)
        train = val = None
        if not self.dist.main:
            distributed.barrier(self.dist)  # rank 0 fills the preprocessing cache first
        for item in self._prepare(plan, boxes):
            if isinstance(item, tuple):
                train, val = item
            else:
                yield item
            if self.stopping:
                yield _stopped_before_training(started)
                return
        if self.dist.main:
            distributed.barrier(self.dist)

        config = (
            resumed.model_config if resumed else model_config(self.preset.model, plan.in_channels, plan.num_classes)
        )
        model = build_model(config)
        if resumed:
            model.load_state_dict(resumed.state)
        model.to(device)
        memory_format = torch.channels_last_3d if t.channels_last else torch.contiguous_format
        model.to(memory_format=memory_format)  # before DDP wraps it: its buckets follow the parameters' layout
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        net = model  # the bare network: validation and checkpoints use it, never the DDP wrapper
        self.network = net
        model = distributed.wrap(model, self.dist, device, t.sync_bn)
        optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        if resumed:
            optimizer.load_state_dict(resumed.optimizer)
        use_amp = t.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        loss_fn = make_loss(t.loss, t.alpha)
        patch = effective_patch(t.patch_size, [c.label.shape for c in train], config.divisor)
        gpu = device.type == "cuda"
        batches = BatchStream(
            train,
            patch,
            batch_size=batch_size(t.batch_size, patch, t.batch_voxels),
            fg_fraction=t.fg_fraction,
            seed=t.seed,
            rank=self.dist.rank,
            augment=t.augment,
            mirror_axes=t.mirror_axes,
            workers=t.loader_threads if t.loader_threads is not None else (4 if gpu else 0),
            pin_memory=gpu,
        )
        if t.compile:
            model = torch.compile(model)

        total_steps = t.epochs * t.iterations_per_epoch
        step = resumed.step if resumed else 0
        history = list(resumed.history) if resumed else []
        best = resumed.best_dice if resumed and not math.isnan(resumed.best_dice) else -1.0
        preset_dict = self.preset.to_dict()
        preset_dict["train"]["patch_size"] = list(patch)
        preset_dict["train"]["batch_size"] = batches.batch_size
        save_kwargs = {
            "plan": plan,
            "labels": self.task.labels,
            "preset": preset_dict,
            "task": self.task.name,
            "locator": locator,
        }
        yield Started(
            total_steps=total_steps,
            epochs=t.epochs,
            device=str(device),
            train_cases=[c.id for c in train],
            val_cases=[c[0].id for c in val],
            start_step=step,
            batch_size=batches.batch_size,
            patch_size=tuple(patch),
        )
        budget = t.minutes * 60.0 if t.minutes else None
        loop_start = time.perf_counter()
        best_path = self.out if self.out.is_file() and resumed else None
        stopped = False
        epoch = step // t.iterations_per_epoch
        try:
            while step < total_steps:
                epoch = step // t.iterations_per_epoch
                model.train()
                x, y = batches.get(step)
                x = x.to(device, non_blocking=True, memory_format=memory_format)
                y = y.to(device, non_blocking=True)
                elapsed = time.perf_counter() - loop_start
                lr = learning_rate(self.preset, step, total_steps, epoch, elapsed / budget if budget else 0.0)
                lr = distributed.broadcast_float(lr, self.dist, device)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                    loss = loss_fn(model(x), y)
                if not torch.isfinite(loss):
                    raise VolsegError(f"the loss became {loss.item()} at step {step}; try a lower learning rate")
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                yield Step(
                    step=step, epoch=epoch, loss=float(loss.item()), lr=lr, seconds=time.perf_counter() - started
                )

                out_of_time = budget is not None and time.perf_counter() - loop_start >= budget
                end_of_epoch = step % t.iterations_per_epoch == 0
                if self.dist.enabled:  # every rank must leave the loop at the same step
                    out_of_time = distributed.agree(out_of_time, self.dist, device)
                    if distributed.agree(self.stopping, self.dist, device):
                        self._stop.set()
                stopped = self.stopping
                if stopped or out_of_time or step >= total_steps or (end_of_epoch and (epoch + 1) % t.val_every == 0):
                    if not self.dist.main:
                        distributed.barrier(self.dist)  # rank 0 alone validates and writes
                        if stopped or out_of_time:
                            break
                        continue
                    record = {
                        "step": step,
                        "epoch": epoch,
                        "loss": float(loss.item()),
                        "seconds": time.perf_counter() - started,
                    }
                    if val and not stopped:
                        scores, save_kwargs["postprocess"] = self._validate(net, val, patch, device)
                        mean = float(np.mean(list(scores.values())))
                        record.update(val_dice=mean, val_cases=scores)
                        yield Validated(
                            step=step, epoch=epoch, dice=scores, mean=mean, seconds=time.perf_counter() - started
                        )
                        if mean > best:
                            best = mean
                            history.append(record)
                            best_path = ckpt.save(
                                self.out, net, step=step, epoch=epoch, best_dice=best, history=history, **save_kwargs
                            )
                            yield CheckpointSaved(path=best_path, kind="best", step=step)
                        else:
                            history.append(record)
                    else:
                        history.append(record)
                    last = ckpt.save(
                        self.last,
                        net,
                        step=step,
                        epoch=epoch,
                        best_dice=best if best >= 0 else float("nan"),
                        history=history,
                        optimizer=optimizer,
                        **save_kwargs,
                    )
                    yield CheckpointSaved(path=last, kind="last", step=step)
                    if not val:  # nothing to select on: the latest weights are the best we know
                        best_path = ckpt.save(self.out, net, step=step, epoch=epoch, history=history, **save_kwargs)
                        yield CheckpointSaved(path=best_path, kind="best", step=step)
                    distributed.barrier(self.dist)
                    if stopped or out_of_time:
                        break
        finally:
            batches.close()
        if device.type == "cuda":  # give the GPU memory back (the GUI keeps running)
            self.network = None
            del model, net, optimizer
            torch.cuda.empty_cache()
        yield Finished(
            step=step,
            best_dice=best if best >= 0 else float("nan"),
            best_path=best_path,
            last_path=self.last if self.last.is_file() else None,
            stopped=stopped,
            seconds=time.perf_counter() - started,
            history=history,
        )

    def _validate(self, model, val, patch, device) -> tuple[dict[str, float], post.PostProcess]:
        """Mean Dice per validation case (raw predictions) and the post-processing they call for."""
        scores, per_case = {}, []
        # validation predicts as `volseg predict` will with this preset (overlap, batch, mirroring)
        infer = self.preset.infer
        for case, prepared, truth in val:
            probs = window_probabilities(model, prepared.image, patch, infer, device, self.preset.train.mirror_axes)
            pred = preprocess.invert(probs, prepared)
            per_case.append(post.class_dice(pred, truth.data, int(probs.shape[0])))
            scores[case.id] = float(np.mean([raw for raw, _ in per_case[-1].values()]))
        return scores, post.decide(per_case)
