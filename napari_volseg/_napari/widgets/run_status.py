"""What the Train widget says about a run: stage (locator / main), step, elapsed and remaining time, and after the
run which weights became the model and where they are. Plain Python (no Qt), fed the trainer's events."""

from __future__ import annotations

import math
import time
from pathlib import Path

from napari_volseg import events as ev
from napari_volseg.config import Preset
from napari_volseg.engine.quality import Quality, judge


def clock(seconds: float) -> str:
    """``42 s``, ``3:05``, ``1:02:09``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _where(path: Path) -> str:
    return f"{path.name} in {path.parent}"


class RunStatus:
    """The state of one training run as the widget shows it."""

    def __init__(self, now=time.perf_counter):
        self.now = now
        self.active = False
        self.preset: Preset | None = None
        self.cascade = False
        self.stage = ""
        self.total_steps = 0
        self.steps = 0
        self.stage_start = 0.0
        self.first_step_at: float | None = None
        self.first_step = 0
        self.run_start = 0.0
        self.best: tuple[float, int] | None = None
        self.validating = True
        self.validations = 0
        self.model: ev.CheckpointSaved | None = None
        """The run's model file as last written (a cascade's locator is it until the main net validates better)."""
        self.offset = 0
        """Where a cascade's main-net steps start on the chart: after the locator's."""
        self.ratios: dict[tuple[str, int], float | None] = {}
        """Predicted / true volume by (stage, step) of each validation."""

    def begin(self, preset: Preset) -> None:
        self.__init__(self.now)
        self.active = True
        self.preset = preset
        self.run_start = self.now()

    # -- events ---------------------------------------------------------------------------------

    def started(self, event: ev.Started) -> None:
        if event.stage == "" and self.stage == "locator":  # the main net's steps follow the locator's on the chart
            self.offset = self.steps
        self.stage = event.stage or ("main" if self.cascade else "")
        self.cascade = self.cascade or event.stage == "locator"
        self.total_steps = event.total_steps
        self.steps = event.start_step
        self.first_step = event.start_step
        self.stage_start = self.now()
        self.first_step_at = None
        self.best = None
        self.validations = 0
        self.validating = bool(event.val_cases)  # without: the model file is the last weights (averaged at the end)

    def step(self, event: ev.Step) -> None:
        if self.first_step_at is None:
            self.first_step_at = self.now()
            self.first_step = event.step - 1
        self.steps = event.step

    def validated(self, event: ev.Validated) -> None:
        self.validations += 1
        self.ratios[(event.stage, event.step)] = event.volume_ratio
        if math.isfinite(event.mean) and (self.best is None or event.mean > self.best[0]):
            self.best = (event.mean, event.step)

    def offset_of(self, event: ev.Step | ev.Validated) -> int:
        """The chart's step offset of ``event``: 0 for a locator's, :attr:`offset` for a main net's."""
        return 0 if event.stage == "locator" else self.offset

    def saved(self, event: ev.CheckpointSaved) -> None:
        if event.kind == "best":
            self.model = event

    def quality(self) -> Quality:
        """The verdict on the run's model file now (never validated: no verdict)."""
        m = self.model
        return judge(m.dice if m else None, self.ratios.get((m.stage, m.step)) if m else None)

    def stop_now(self) -> str:
        """What Stop would leave now, said before it is pressed."""
        m = self.model
        if m is None:
            if self.steps <= 0 or self.first_step_at is None:
                return "Stop now: no model yet"
            return "Stop now: the latest weights, not validated yet"
        if m.dice is None:
            return f"Stop now: the weights of step {m.step} (not validated)"
        what = "the coarse whole-scan model (locator)" if m.stage == "locator" else f"the model of step {m.step}"
        return f"Stop now: {what}, {self.quality().line}"

    # -- texts ----------------------------------------------------------------------------------

    def stage_title(self) -> str:
        if self.stage == "locator":
            return "cascade stage 1 of 2: locator (coarse grid)"
        if self.stage == "main":
            return "cascade stage 2 of 2: main network"
        return "training"

    def preparing(self, event: ev.Progress) -> str:
        prefix = "cascade stage 2 of 2: " if self.cascade else ""
        return f"{prefix}preparing cases {event.done} / {event.total}: {event.item}"

    def started_text(self, event: ev.Started) -> str:
        return (
            f"{self.stage_title()} on {event.device}: {len(event.train_cases)} training / "
            f"{len(event.val_cases)} validation cases, batches of {event.batch_size} × "
            + " × ".join(map(str, event.patch_size))
        )

    def _budget_left(self) -> float | None:
        """Seconds left of this stage's time budget (a cascade's locator gets ``locator_fraction`` of it)."""
        minutes = self.preset.train.minutes if self.preset else None
        if not minutes:
            return None
        from napari_volseg.planning import time_share  # the planner owns the stages' shares

        stage_minutes = minutes * time_share(self.preset, self.stage, self.cascade)
        return stage_minutes * 60.0 - (self.now() - (self.first_step_at or self.stage_start))

    def _by_steps(self) -> float | None:
        """Seconds until the stage's last step at the step rate so far (None until two steps are timed)."""
        done = self.steps - self.first_step
        if self.first_step_at is None or done <= 1:
            return None
        return (self.now() - self.first_step_at) / done * (self.total_steps - self.steps)

    def remaining(self) -> float | None:
        """Seconds left in this stage: the step rate's estimate, capped by the time budget."""
        estimates = [e for e in (self._by_steps(), self._budget_left()) if e is not None]
        return max(0.0, min(estimates)) if estimates else None

    def step_text(self) -> str:
        # "step 30 / 25000" read as the goal where the minutes end the run long before (a newcomer's first run):
        # the step count is shown against the last step only where the steps, not the clock, will end the stage
        budget, by_steps = self._budget_left(), self._by_steps()
        clock_ends = budget is not None and (by_steps is None or budget <= by_steps)
        parts = [f"{self.stage_title()}: step {self.steps}" + ("" if clock_ends else f" / {self.total_steps}")]
        parts.append(f"{clock(self.now() - self.run_start)} elapsed")
        left = self.remaining()
        if left is not None:
            parts.append(f"about {clock(left)} left" + (" in this stage" if self.stage == "locator" else ""))
        if self.best is not None:
            parts.append(f"best validation Dice {self.best[0]:.3f} (step {self.best[1]})")
        return " · ".join(parts) + "\n" + self.stop_now()

    def model_after(self, event: ev.Finished) -> Path | None:
        """The weights that become the model (:attr:`~napari_volseg.events.Finished.model` decides)."""
        return event.model

    def finished_text(self, event: ev.Finished) -> str:
        self.active = False
        how = "stopped" if event.stopped else "finished"
        took = clock(event.seconds)
        model = self.model_after(event)
        if model is None:
            if self.stage == "locator":
                return (
                    f"stopped while training the locator (cascade stage 1 of 2) at step {self.steps} of "
                    f"{self.total_steps} after {took}: no model yet (none had been saved)."
                )
            return f"{how} after {took}, before training began: no model yet."
        m = self.model
        if model == event.best_path and m is not None and m.dice is not None:
            which = f"the best validated weights (Dice {m.dice:.3f} at step {m.step})"
            if m.stage == "locator":
                main = "had not started" if self.stage == "locator" else "had not validated better"
                which = (
                    f"the coarse whole-scan network (the cascade's locator: Dice {m.dice:.3f} at step {m.step}; the "
                    f"main network {main})"
                )
        elif event.best_path is not None and model == event.best_path:
            averaged = (event.history[-1].get("averaged_steps") if event.history else None) or []
            which = (
                f"the mean of the weights at steps {', '.join(map(str, averaged))}"
                if len(averaged) > 1
                else f"the weights of step {event.step}"
            )
        else:
            which = f"the last weights (step {event.step}; not validated yet)"
        text = f"{how} at step {event.step} after {took}. Model: {which}, {_where(model)}."
        if model == event.best_path and m is not None and m.dice is not None:
            line = self.quality().line
            text += f" {line[0].upper()}{line[1:]}."
        if model != event.last_path and event.last_path is not None and event.stopped:
            text += f" The last weights (step {event.step}) are in {event.last_path.name}."
        return text

    def finished_summary(self, event: ev.Finished) -> str:
        """One line for the notification."""
        how = "stopped" if event.stopped else "finished"
        model = self.model_after(event)
        if model is None:
            return f"training {how}: no model yet"
        quality = self.quality()
        verdict = f" ({quality.line})" if model == event.best_path and quality.usable is not None else ""
        return f"training {how} at step {event.step}: model {model.name}{verdict}"
