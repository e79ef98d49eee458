"""Train the 3D classifier: a short loop that yields the engine's typed events (every face shows the same run).

Events: ``Started``, ``Step`` (per batch), ``Validated`` (per epoch; ``metric="accuracy"``: the test set's accuracy
overall and per class), ``CheckpointSaved`` (per epoch, ``kind="last"``), ``ClassifierFinished`` (a ``Finished`` with
the final test ``accuracy``; ``best_path`` is the checkpoint) or ``Failed``. The test set only scores; no choice is made
on it (the checkpoint is the model after its last epoch), so the accuracy it reports is a fair test figure.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_volseg.classify import checkpoint as cckpt
from napari_volseg.classify.config import ClassifyPreset
from napari_volseg.classify.data import VolumeSet, VolumeSource
from napari_volseg.classify.digits3d import DigitsSource
from napari_volseg.engine.device import resolve_device, set_threads
from napari_volseg.errors import VolsegError
from napari_volseg.events import CheckpointSaved, Event, Failed, Finished, Started, Step, Validated
from napari_volseg.models.registry import build_model, classifier_config


@dataclass(frozen=True)
class ClassifierFinished(Finished):
    """A classifier run's end: ``accuracy`` on its test digits (``best_dice`` stays NaN: a classifier has no Dice)."""

    accuracy: float = float("nan")


log = logging.getLogger(__name__)
EVAL_BATCH = 64


def digits_source(preset: ClassifyPreset) -> DigitsSource:
    """The 3D digits as ``preset`` asks for them."""
    return DigitsSource(preset.train_copies, preset.test_copies, preset.fresh, preset.seed, preset.limit)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: VolumeSet, device: torch.device) -> tuple[float, dict[str, float]]:
    """Accuracy on ``data`` overall and per class (classes present only)."""
    model.eval()
    predicted = np.concatenate(
        [
            model(torch.from_numpy(data.volumes[i : i + EVAL_BATCH]).unsqueeze(1).to(device)).argmax(1).cpu().numpy()
            for i in range(0, len(data), EVAL_BATCH)
        ]
    )
    right = predicted == data.labels
    per_class = {
        name: float(right[data.labels == c].mean()) for c, name in enumerate(data.classes) if (data.labels == c).any()
    }
    return float(right.mean()), per_class


class ClassifierTrainer:
    """Train ``preset`` on ``source`` (default: the 3D digits the preset names); the checkpoint goes to ``out``."""

    def __init__(self, preset: ClassifyPreset, out: str | os.PathLike, source: VolumeSource | None = None):
        self.preset = preset
        self.out = Path(out)
        self.source = source if source is not None else digits_source(preset)
        self.model_config = classifier_config(preset.model)
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the run after the current step; the model is scored and saved first."""
        self._stop.set()

    def run(self) -> Iterator[Event]:
        try:
            yield from self._run()
        except VolsegError as exc:
            yield Failed(str(exc))
        except MemoryError:
            yield Failed("out of memory: use a smaller batch size")
        except Exception as exc:  # a bug: keep the traceback in the log, show one line
            log.exception("classifier training failed")
            yield Failed(f"training failed: {type(exc).__name__}: {exc}")

    def _check_out(self) -> None:
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VolsegError(f"cannot create the folder of {self.out} ({exc.strerror})") from exc
        if not os.access(self.out.parent, os.W_OK) or self.out.is_dir():
            raise VolsegError(f"cannot write the checkpoint {self.out}: not a writable file path")

    def _run(self) -> Iterator[Event]:
        p = self.preset
        self._check_out()
        started = time.perf_counter()
        device = resolve_device(p.device)
        set_threads(p.threads)
        torch.manual_seed(p.seed)
        model = build_model(self.model_config).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
        test = self.source.test()
        data = self.source.train(0)
        if data.volumes.shape[1:] != self.model_config.input_shape:
            raise VolsegError(
                f"{p.model} takes {'x'.join(map(str, self.model_config.input_shape))} volumes; "
                f"the data are {'x'.join(map(str, data.volumes.shape[1:]))}"
            )
        # a last batch of one volume is dropped: BatchNorm cannot normalise a single 1x1x1 feature
        steps_per_epoch = math.ceil((len(data) - 1) / p.batch_size)
        yield Started(
            total_steps=steps_per_epoch * p.epochs,
            epochs=p.epochs,
            device=str(device),
            train_cases=list(data.ids),
            val_cases=list(test.ids),
            batch_size=p.batch_size,
            patch_size=self.model_config.input_shape,
        )
        budget = p.minutes * 60 if p.minutes else None
        step, history, accuracy = 0, [], float("nan")
        for epoch in range(p.epochs):
            if epoch:
                data = self.source.train(epoch)
            model.train()
            order = np.random.default_rng([p.seed, epoch]).permutation(len(data))
            losses = []
            for start in range(0, len(order) - 1, p.batch_size):
                batch = order[start : start + p.batch_size]
                x = torch.from_numpy(data.volumes[batch]).unsqueeze(1).to(device)
                y = torch.from_numpy(data.labels[batch]).to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                if not torch.isfinite(loss):
                    raise VolsegError(f"the loss became {loss.item()} at step {step}; try a lower learning rate")
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(float(loss.item()))
                yield Step(step=step, epoch=epoch, loss=losses[-1], lr=p.lr, seconds=time.perf_counter() - started)
                out_of_time = budget is not None and time.perf_counter() - started >= budget
                if self._stop.is_set() or out_of_time:
                    break
            accuracy, per_class = evaluate(model, test, device)
            seconds = time.perf_counter() - started
            history.append(
                {
                    "epoch": epoch,
                    "step": step,
                    "loss": float(np.mean(losses)) if losses else float("nan"),
                    "test_accuracy": accuracy,
                    "seconds": seconds,
                }
            )
            yield Validated(step, epoch, per_class, accuracy, seconds, metric="accuracy")
            cckpt.save(
                self.out,
                model,
                test.classes,
                preset=p.to_dict(),
                data=self.source.description,
                history=history,
                step=step,
                epoch=epoch + 1,
                accuracy=accuracy,
            )
            yield CheckpointSaved(self.out, "last", step)
            if self._stop.is_set() or (budget is not None and time.perf_counter() - started >= budget):
                break
        yield ClassifierFinished(
            accuracy=accuracy,
            step=step,
            best_dice=float("nan"),
            best_path=self.out,
            last_path=self.out,
            stopped=self._stop.is_set(),
            seconds=time.perf_counter() - started,
            history=history,
        )
