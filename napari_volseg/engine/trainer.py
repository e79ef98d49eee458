"""Training a preset on a task, as a generator of events: the one entry point of every face.

``Trainer(task, preset, out).run()`` yields :mod:`~napari_volseg.events`; ``stop()`` (from any thread) ends the run
at the next step, after writing the 'last' checkpoint. The split comes from
:func:`~napari_volseg.io.decathlon.training_split`, the plan and the cascade decision from
:func:`~napari_volseg.planning.plan_run`. A run whose volumes need a coarse-to-fine cascade trains a
:class:`~napari_volseg.engine.cascade.Cascade` (a locator, then the main net); any other one
:class:`~napari_volseg.engine.train.NetTrainer`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import torch

from napari_volseg import planning
from napari_volseg.config import Preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import distributed, naming
from napari_volseg.engine.cascade import Cascade
from napari_volseg.engine.device import resolve_device, set_threads
from napari_volseg.engine.run import Run, resumable
from napari_volseg.engine.train import NetTrainer
from napari_volseg.errors import VolsegError
from napari_volseg.events import Event, Failed, Finished
from napari_volseg.io.decathlon import Split, Task, training_split
from napari_volseg.models import model_config
from napari_volseg.models.unet3d import ModelConfig
from napari_volseg.outputs import check_writable

log = logging.getLogger(__name__)


def check_warm_start(warm: ckpt.Checkpoint | ModelConfig, preset: Preset, task: Task, name: str) -> None:
    """One line if ``warm``'s network (a checkpoint, or its architecture alone) cannot start ``preset``'s on ``task``:
    other input channels or another architecture (its classes may differ: the head then starts fresh)."""
    config = warm if isinstance(warm, ModelConfig) else warm.model_config
    channels = max(1, len(task.modalities))
    if config.in_channels != channels:
        raise VolsegError(
            f"cannot start from {name}: it reads {config.in_channels} channel(s), {task.name} has {channels}"
        )
    wanted = model_config(preset.model, channels, task.num_classes, preset.train.deep_supervision)
    mine = dataclasses.replace(wanted, num_classes=0, deep_supervision=0)
    if not isinstance(config, ModelConfig) or dataclasses.replace(config, num_classes=0, deep_supervision=0) != mine:
        raise VolsegError(f"cannot start from {name}: its network is not {preset.model}; choose scratch")


class Trainer:
    """Train ``preset`` on ``task``; the best checkpoint goes to ``out``, the resumable last one beside it.

    ``split`` names the training and validation cases: :func:`~napari_volseg.io.decathlon.training_split`
    decides it on construction from the preset, unless a caller that owns another decision passes
    one (the annotation loop's fine-tuning keeps its parent model's validation cases). Everything
    that reads files happens in :meth:`run`, so a GUI thread may construct a trainer.

    ``init_from`` (fine-tuning): start from that checkpoint's weights, plan, architecture and (for a
    cascade) locator, with a fresh optimizer and step count. ``case_weights`` (case id -> weight,
    default 1): how often each training case is drawn relative to the others.
    """

    def __init__(
        self,
        task: Task,
        preset: Preset,
        out: str | Path,
        *,
        resume: bool = False,
        cache_root: Path | None = None,
        split: Split | None = None,
        init_from: ckpt.Checkpoint | None = None,
        case_weights: dict[str, float] | None = None,
        warm_from: ckpt.Checkpoint | None = None,
        warm_name: str = "",
    ):
        self.task = task
        self.preset = preset
        self.out = check_writable(out, what="checkpoint")  # before any work: the run would end unsaved
        # an unknown model preset or too deep a supervision is one line now, not after preprocessing (a fine-tune
        # keeps its base model's heads)
        model_config(preset.model, deep_supervision=0 if init_from else preset.train.deep_supervision)
        self.resume = resume
        self.cache_root = cache_root
        self.split = split if split is not None else training_split(task, preset.train)
        self.init_from = init_from
        self.case_weights = case_weights
        if warm_from is not None and init_from is None:
            check_warm_start(warm_from, preset, task, warm_name)
        self.warm_from = warm_from if init_from is None else None
        self.warm_name = (warm_name or "a checkpoint") if self.warm_from is not None else ""
        self.dist = distributed.env_context()
        self._stop = threading.Event()
        self.current: NetTrainer | Cascade | None = None
        """What trains: one :class:`NetTrainer`, or a cascade of two."""
        unlabelled = [c.id for c in self.split.train + self.split.val if c.label_path is None]
        if unlabelled:
            raise VolsegError(f"training and validation cases need labels; {', '.join(unlabelled[:3])} have none")

    def stop(self) -> None:
        """Ask the run to end at the next step; the last checkpoint is written first."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def network(self) -> torch.nn.Module | None:
        """The network trained last (CPU runs keep it after the run)."""
        return self.current.network if self.current is not None else None

    def run(self) -> Iterator[Event]:
        """Yield events until the run ends; under torchrun only rank 0's events carry logs."""
        try:
            finished = yield from self._run()
            yield finished
        except VolsegError as exc:
            yield Failed(str(exc))
        except MemoryError:
            yield Failed("out of memory: use a smaller patch size or batch size, or a coarser spacing preset")
        except torch.OutOfMemoryError:
            yield Failed("out of GPU memory: use a smaller patch size or batch size, or --device cpu")
        except OSError as exc:  # the disk filled up or a file went away while training
            yield Failed(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else f"file error: {exc}")
        except Exception as exc:  # a bug: keep the traceback in the log, show one line
            log.exception("training failed")
            yield Failed(f"training failed: {type(exc).__name__}: {exc}")
        finally:
            distributed.shutdown(self.dist)

    def _run(self) -> Generator[Event, None, Finished]:
        set_threads(self.preset.train.threads)
        device = resolve_device(self.preset.train.device)
        run = Run(
            self.task,
            self.split,
            device,
            self.dist,
            self._stop,
            time.perf_counter(),
            self.cache_root,
            self.case_weights,
            self.warm_from,
            self.warm_name,
        )
        init = self.init_from
        # fine-tuning continues the checkpoint's kind of model; otherwise the task's volumes decide
        if init is not None:
            cascade = init.locator is not None
        else:
            stats = run.statistics(planning.measures_intensities(self.task, self.preset.plan))
            cascade = planning.plan_run(self.task, self.preset, stats=stats).cascade
        if cascade:
            self.current = Cascade(run, self.preset, self.out, resume=self.resume, init_from=init)
            run.device = distributed.init(self.dist, device)
            return (yield from self.current.train())
        resumed = resumable(naming.last_path(self.out)) if self.resume else None
        run.device = distributed.init(self.dist, device)
        base = resumed or init
        plan = base.plan if base else run.plan(self.preset.plan)
        warm = run.warm.state if run.warm is not None else None
        self.current = NetTrainer(run, self.preset, self.out, plan, resumed=resumed, init=init, warm=warm)
        return (yield from self.current.train())
