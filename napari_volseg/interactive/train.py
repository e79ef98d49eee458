"""Training a promptable net on simulated interactions, for a time budget, and checking it as the bench does.

:class:`InteractiveTrainer` draws :func:`~napari_volseg.interactive.data.sample` batches from the structures, trains the CPU-lean
U-Net with five input channels (Dice + cross-entropy, AdamW, cosine decay over the budget), and ends with the
simulated annotator on held-out structures (Dice after 1 and 3 clicks), written into the checkpoint's settings.
:func:`finetune` continues a promptable checkpoint on accepted cases (with a replay of what it learnt before).
Progress goes out as the engine's events, so the CLI and the widgets show it as they show any training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_volseg import events as ev
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.distributed import DistContext
from napari_volseg.errors import VolsegError
from napari_volseg.interactive import simulate as sim
from napari_volseg.interactive.data import Structure, sample
from napari_volseg.interactive.encode import _ball
from napari_volseg.interactive.net import PromptNet, Settings
from napari_volseg.interactive.session import InteractiveSession
from napari_volseg.losses import make_loss
from napari_volseg.models import build_model
from napari_volseg.models.registry import model_config
from napari_volseg.planning import Plan

LABELS = {0: "background", 1: "object"}
MODEL_PRESET = "cpu-lean"


def evaluate(net: PromptNet, structures: list[Structure], clicks: int = 3) -> list[list[float]]:
    """The simulated annotator on each structure: Dice after each of ``clicks`` clicks."""
    curves = []
    for s in structures:
        session = InteractiveSession(net, s.image, s.spacing)
        click = sim.first_click(s.mask, s.spacing)
        dices = []
        for _ in range(clicks):
            mask = session.click(click.zyx, click.positive)
            dices.append(sim.dice(mask, s.mask))
            click = sim.next_click(session.mask, s.mask, s.spacing)
            if click is None:
                dices += [1.0] * (clicks - len(dices))
                break
        curves.append(dices)
    return curves


LOOP_AFTER, LOOP_SHARE, LOOP_ROUNDS = 50, 0.5, 2
"""After ``LOOP_AFTER`` steps, ``LOOP_SHARE`` of the batches are shown the network's own answers: up to
``LOOP_ROUNDS`` times, its mask becomes the previous mask and a click goes to its largest error, as a user's next
click would (DeepEdit's training; without it the net learnt to ignore corrective clicks on its own kind of errors:
Dice 0.42 -> 0.44 in five clicks on a held-out heart)."""


def in_the_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, rounds: int) -> None:
    """Update the batch ``x`` in place with ``rounds`` simulated rounds of the network's answers and next clicks."""
    for _ in range(rounds):
        with torch.no_grad():
            answer = model(x.contiguous(memory_format=torch.channels_last_3d)).argmax(1).numpy().astype(bool)
        for i in range(len(x)):
            click = sim.next_click(answer[i], y[i].numpy(), (1.0, 1.0, 1.0))
            x[i, 4] = torch.from_numpy(answer[i].astype(np.float32))
            if click is not None:
                _ball(x[i, 1 if click.positive else 2], np.asarray(click.zyx, dtype=float))


def seed_from_segmenter(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Start a promptable net from a task's segmentation net of the same architecture: every tensor that fits is
    copied; the first convolution takes the image weights for channel 0 and zeros for the prompt channels (so the
    net first answers as the task model does and learns what the prompts add); a head for other classes starts
    fresh. Returns the names copied."""
    own = model.state_dict()
    copied = []
    for name, value in state.items():
        if name not in own:
            continue
        target = own[name]
        if target.shape == value.shape:
            own[name] = value.to(target.dtype).clone()
        elif target.ndim == 5 and value.ndim == 5 and target.shape[0] == value.shape[0] and value.shape[1] == 1:
            own[name] = torch.zeros_like(target)
            own[name][:, :1] = value.to(target.dtype)
        else:
            continue
        copied.append(name)
    model.load_state_dict(own)
    return copied


class InteractiveTrainer:
    """Trains a promptable net for ``minutes`` and saves it at ``out``; :meth:`run` yields the engine's events
    (Started, Step, Validated: Dice after 3 simulated clicks per held-out structure, Finished), so the CLI and the
    widgets drive it as they drive :class:`~napari_volseg.engine.trainer.Trainer`; :meth:`stop` ends it after this
    step with the model saved."""

    def __init__(
        self,
        structures: list[Structure],
        held_out: list[Structure],
        out: str | Path,
        *,
        minutes: float,
        settings: Settings,
        parts: bool = False,
        batch: int = 2,
        lr: float = 3e-3,
        seed: int = 0,
        warm: ckpt.Checkpoint | None = None,
        task=None,
        name: str = "",
        started_from: str = "",
    ):
        if not structures:
            raise VolsegError("no labelled structure to train a promptable model on")
        self.structures, self.held_out, self.out = structures, held_out, Path(out)
        self.minutes, self.settings, self.parts = minutes, settings, parts
        self.batch, self.lr, self.seed, self.warm = batch, lr, seed, warm
        self.task, self.name, self.started_from = task, name, started_from
        self.dist = DistContext()
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    def run(self) -> Iterator[ev.Event]:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        settings = self.settings
        config = model_config(MODEL_PRESET, in_channels=len(settings.channels), num_classes=2)
        model = build_model(config)
        if self.warm is not None and self.warm.interactive is not None:
            model.load_state_dict(self.warm.state)
        elif self.warm is not None:
            seed_from_segmenter(model, self.warm.state)
        model = model.to(memory_format=torch.channels_last_3d).train()
        loss_fn = make_loss("dicece")
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=1e-4)
        budget = self.minutes * 60.0
        lo, hi = settings.extent_jitter
        extents = (settings.min_extent_mm * lo, settings.min_extent_mm * hi)
        grid = (settings.grid,) * 3
        start, step, losses = time.perf_counter(), 0, []
        train_ids = sorted({s.case_id for s in self.structures})
        val_ids = sorted({s.case_id for s in self.held_out})
        while (elapsed := time.perf_counter() - start) < budget and not self.stopping:
            lr = self.lr * 0.5 * (1 + math.cos(math.pi * min(elapsed / budget, 1.0)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            pairs = [
                sample(
                    self.structures[rng.integers(len(self.structures))],
                    rng,
                    grid=settings.grid,
                    min_extent_mm=extents,
                    max_extent_mm=settings.max_extent_mm,
                    parts=self.parts,
                )
                for _ in range(self.batch)
            ]
            x = torch.stack([p[0] for p in pairs])
            y = torch.stack([p[1] for p in pairs])
            if step >= LOOP_AFTER and rng.random() < LOOP_SHARE:
                in_the_loop(model, x, y, int(rng.integers(1, LOOP_ROUNDS + 1)))
            x = x.contiguous(memory_format=torch.channels_last_3d)
            loss = loss_fn(model(x), y[:, None].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            if step == 3:  # the rate is known: the run's length in steps
                rate = step / max(time.perf_counter() - start, 1e-3)
                yield ev.Started(int(rate * budget), 1, "cpu", train_ids, val_ids, 0, self.batch, grid)
            if step >= 3 and step % 5 == 0:
                yield ev.Step(step, 0, float(np.mean(losses[-20:])), lr, time.perf_counter() - start)
        model.eval()
        net = PromptNet.from_model(model, settings)
        curves = evaluate(net, self.held_out) if self.held_out else []
        per_case = {f"{s.case_id} {s.name.split('/')[-1]}": c[-1] for s, c in zip(self.held_out, curves, strict=True)}
        mean = float(np.mean(list(per_case.values()))) if per_case else float("nan")
        if curves:
            yield ev.Validated(step, 0, per_case, mean, time.perf_counter() - start)
        figures = {
            "cases": len(curves),
            "dice_1_click": round(float(np.mean([c[0] for c in curves])), 4) if curves else None,
            "dice_3_clicks": round(mean, 4) if curves else None,
            "steps": step,
            "minutes": round((time.perf_counter() - start) / 60, 2),
        }
        final = replace(settings, held_out=figures)
        spacing = tuple(float(v) for v in np.median([s.spacing for s in self.structures], axis=0))
        history = [
            {
                "step": step,
                "loss": float(np.mean(losses[-50:])) if losses else None,
                "val_cases": val_ids,
                "mean_dice": mean if curves else None,
            }
        ]
        path = ckpt.save(
            self.out,
            model,
            Plan(resample="spacing", target_spacing=spacing, num_classes=2, in_channels=1),
            LABELS,
            history=history,
            step=step,
            best_dice=mean,
            task=self.name,
            train_cases=train_ids,
            started_from=self.started_from,
            interactive=final.to_dict(),
        )
        yield ev.Finished(step, mean, path, None, self.stopping, time.perf_counter() - start, history)


HELD_OUT_STRUCTURES = 8
"""At most this many held-out structures are scored at the end of a run (3 simulated clicks each)."""
DEFAULT_START = "volseg-interactive"
"""The class-agnostic zoo model a task's promptable model starts from (``--start-from auto``) where installed."""


def task_settings(structures: list[Structure]) -> Settings:
    """Region sizes for a task's structures: the smallest view shows the median structure whole (with 10 %)."""
    median = float(np.median([s.extent_mm for s in structures]))
    low = float(np.clip(1.1 * median, 32.0, 200.0))
    return Settings(
        min_extent_mm=round(low, 1),
        max_extent_mm=round(max(200.0, 1.5 * low), 1),
        trained_on=sorted({s.name for s in structures}),
    )


def open_start(start: str | None) -> tuple[ckpt.Checkpoint | None, str]:
    """The promptable checkpoint a run starts from: ``auto`` (the class-agnostic zoo model where installed, else
    scratch), ``scratch``, or a model name or path (which must be promptable)."""
    from napari_volseg.zoo.registry import UnknownModelError, resolve

    if start in (None, "", "scratch"):
        return None, ""
    name = DEFAULT_START if start == "auto" else start
    try:
        path = resolve(name)
    except UnknownModelError:
        if start == "auto":
            return None, ""
        raise
    checkpoint = ckpt.load(path)
    if checkpoint.interactive is None:
        raise VolsegError(f"{name} is a segmentation model; a promptable model starts from a promptable one or scratch")
    return checkpoint, str(name)


def task_trainer(
    task,
    out,
    *,
    minutes: float = 5.0,
    start_from: str | None = "auto",
    val_cases: int | None = None,
    warm: ckpt.Checkpoint | None = None,
    lr: float = 3e-3,
) -> InteractiveTrainer:
    """A promptable model of ``task``'s classes: every class of its fully labelled cases, the validation cases of
    the task's split (:func:`~napari_volseg.io.decathlon.training_split`) held out and scored at the end."""
    from napari_volseg.config import TrainConfig
    from napari_volseg.interactive.data import structures_of_task
    from napari_volseg.io.decathlon import training_split

    split = training_split(task, TrainConfig(val_cases=val_cases) if val_cases is not None else TrainConfig())
    structures = structures_of_task(task, [c.id for c in split.train if not c.sparse])
    held = structures_of_task(task, [c.id for c in split.val])[:HELD_OUT_STRUCTURES]
    if not structures:
        raise VolsegError(f"task {task.name} has no fully labelled case to train a promptable model on")
    name = ""
    if warm is None:
        warm, name = open_start(start_from)
    settings = task_settings(structures)
    if warm is not None:  # keep the view the weights learnt; the task's own structures decide nothing else
        settings = replace(Settings.from_dict(warm.interactive), trained_on=settings.trained_on, held_out={})
    return InteractiveTrainer(
        structures,
        held,
        out,
        minutes=minutes,
        settings=settings,
        warm=warm,
        task=task,
        name=f"{task.name}-interactive",
        started_from=name,
        lr=lr,
    )


def finetuner(model, task, out, *, minutes: float = 2.0) -> InteractiveTrainer:
    """Continue a promptable model on ``task``'s labelled cases (the accepted ones among them), at a third of the
    learning rate so that what it knew stays."""
    from napari_volseg.zoo.registry import resolve

    checkpoint = ckpt.load(resolve(model))
    if checkpoint.interactive is None:
        raise VolsegError(f"{model} is not a promptable model")
    trainer = task_trainer(task, out, minutes=minutes, warm=checkpoint, lr=1e-3)
    trainer.started_from = str(model)
    return trainer


def is_promptable(model) -> bool:
    """True for a promptable checkpoint, from its header alone (False for anything unreadable)."""
    from napari_volseg.zoo.registry import UnknownModelError, resolve

    try:
        return "interactive" in ckpt.read_meta(resolve(model))
    except (UnknownModelError, OSError):
        return False
