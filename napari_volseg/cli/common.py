"""What the commands share: progress bars, downloads followed, and a trainer's events shown as lines and a bar."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from pathlib import Path

from napari_volseg.errors import VolsegError


def follow_download(events, desc: str) -> Path:
    """Show a download's events as a tqdm byte bar; the path it ends with."""
    from napari_volseg.events import Downloaded

    bar = progress_bar(desc, unit="B", unit_scale=True)
    try:
        for event in events:
            if isinstance(event, Downloaded):
                return event.path
            bar.total, bar.n = event.total, event.done
            bar.refresh()
    finally:
        bar.close()
    raise VolsegError(f"{desc}: the download ended without a result")


def progress_bar(desc: str, total: int | None = None, unit: str = "it", unit_scale: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, disable=None, leave=False)


def run_trainer(trainer, what_name: str) -> int:
    """Drive a trainer's events: a progress bar, validation lines, one line at the end."""
    from napari_volseg import events as ev

    if not trainer.dist.main:  # under torchrun, rank 0 alone reports
        for event in trainer.run():
            if isinstance(event, ev.Failed):
                raise VolsegError(f"rank {trainer.dist.rank}: {event.message}")
        return 0
    with signals_stop(trainer) as caught:
        finished = report_events(trainer, what_name)
    if caught and (finished is None or (finished.best_path is None and finished.last_path is None)):
        return 130  # interrupted before a model existed
    return 0


@contextlib.contextmanager
def signals_stop(trainer):
    """Ctrl-C (SIGINT) or SIGTERM is Stop: the run ends after this step and its model stays at ``--out``; a second
    Ctrl-C interrupts at once (exit 130)."""
    if threading.current_thread() is not threading.main_thread():  # signals can only be caught there
        yield []
        return

    def stop(signum, _frame):
        if trainer.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop()
        print(
            f"\nvolseg: {signal.Signals(signum).name}: stopping after this step; the model stays at {trainer.out} "
            "(Ctrl-C again to abort)",
            file=sys.stderr,
        )

    caught: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: (caught.append(signum), stop(signum, frame)))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def report_events(trainer, what_name: str):
    """Print the run's events; its :class:`Finished` (None if it ended otherwise)."""
    from napari_volseg import events as ev

    task = trainer.task
    bar = None
    for event in trainer.run():
        if isinstance(event, ev.Progress):
            print(f"preprocessing {event.done}/{event.total} {event.item}", file=sys.stderr, end="\r")
        elif isinstance(event, ev.Started):
            if bar:  # a cascade: the locator stage ended, the main stage starts
                bar.close()
            total = event.total_steps
            what = "the cascade's coarse locator" if event.stage == "locator" else what_name
            print(
                f"training {what} on {task.name}: {len(event.train_cases)} train / "
                f"{len(event.val_cases)} validation cases, device {event.device}, batches of {event.batch_size} × "
                + "×".join(map(str, event.patch_size)),
                file=sys.stderr,
            )
            bar = progress_bar(event.stage or "train", total=total, unit="step")
            bar.n = event.start_step
        elif isinstance(event, ev.Step):
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", refresh=False)
        elif isinstance(event, ev.Validated):
            from napari_volseg.engine.quality import judge

            text = " ".join(f"{k}={v:.3f}" for k, v in event.dice.items())
            stage = f"{event.stage} " if event.stage else ""
            (bar.write if bar else print)(
                f"{stage}epoch {event.epoch + 1} step {event.step}: mean Dice {event.mean:.4f} ({text}); "
                + judge(event.mean, event.volume_ratio).verdict
            )
        elif isinstance(event, ev.Failed):
            if bar:
                bar.close()
            raise VolsegError(event.message)
        elif isinstance(event, ev.Finished):
            if bar:
                bar.close()
            print(finished_line(event))
            return event
    return None


def finished_line(event) -> str:
    """How a training run ended and which weights its checkpoint holds (never a "nan" Dice: a run without
    validation, or stopped before its first, names its weights instead)."""
    how = "stopped" if event.stopped else "finished"
    head = f"{how} at step {event.step} after {event.seconds / 60:.1f} min"
    if event.model is None:
        return f"{head}: no model yet"
    if event.best_path is None:  # stopped before its first validation: the last weights are the model (as in napari)
        return f"{head}, before the first validation: the model is the last weights (resumable), {event.last_path}"
    if math.isfinite(event.best_dice):
        from napari_volseg.engine.quality import of_file

        verdict = of_file(event.best_path).verdict
        return f"{head}; best validation Dice {event.best_dice:.4f} ({verdict}); checkpoint {event.best_path}"
    averaged = (event.history[-1].get("averaged_steps") if event.history else None) or []
    which = (
        f"the mean of the weights at steps {', '.join(map(str, averaged))}"
        if len(averaged) > 1
        else f"the weights of step {event.step}"
    )
    return f"{head}; no validation ran, the model is {which}; checkpoint {event.best_path}"
