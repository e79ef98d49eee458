"""``volseg demo``'s flow without a window: train briefly, predict the held-out cases, score, picture.

The synthetic CT task is the default so that the demo runs anywhere, offline, in a few minutes
of CPU. ``screenshot.png`` shows the first validation case (green: ground truth, magenta:
prediction); ``metrics.json`` holds per-case Dice and the run's figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from napari_volseg import config, overview
from napari_volseg.io import decathlon
from napari_volseg.outputs import atomic_write, check_writable

DEMO_MINUTES = 2.0


def demo_task(data: Path | None = None, kind: str = "ct", cases: int = 8) -> decathlon.Task:
    """The task the demo works on: ``data`` if given, else the cached synthetic task."""
    if data is not None:
        return decathlon.load_task(data)
    from napari_volseg.io.synthetic import synthetic_task_dir

    return decathlon.load_task(synthetic_task_dir(kind, cases))


def run_headless(
    out: Path,
    data: Path | None = None,
    kind: str = "ct",
    minutes: float | None = None,
    preset: str = config.DEFAULT_PRESET,
    log=print,
) -> dict:
    """Train ``preset`` for ``minutes`` on the demo task, predict its validation cases, write the results."""
    from napari_volseg import events as ev
    from napari_volseg.config import load_preset
    from napari_volseg.engine.predict import predict_cases
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.errors import VolsegError
    from napari_volseg.zoo.backend import open_model

    started = time.perf_counter()
    check_writable(out, folder=True, what="demo output folder")
    task = demo_task(data, kind)
    out.mkdir(parents=True, exist_ok=True)
    minutes = DEMO_MINUTES if minutes is None else minutes
    config = load_preset(preset).with_overrides(minutes=minutes, val_every=2)
    trainer = Trainer(task, config, out / "model.safetensors")
    finished = None
    for event in trainer.run():
        if isinstance(event, ev.Validated):
            log(f"step {event.step}: validation Dice {event.mean:.3f}")
        elif isinstance(event, ev.Failed):
            raise VolsegError(event.message)
        elif isinstance(event, ev.Finished):
            finished = event
    rows, shot = [], None
    for event in predict_cases(open_model(finished.model), task, trainer.split.val):
        result = event.result
        names = [task.labels.get(s.label, str(s.label)) for s in result.scores]
        rows.append(
            {
                "case": result.case,
                "dice": {n: round(s.dice, 4) for n, s in zip(names, result.scores, strict=True)},
                "hd95_mm": {n: round(s.hd95, 2) for n, s in zip(names, result.scores, strict=True)},
                "predicted_ml": round(sum(s.pred_ml for s in result.scores), 2),
                "true_ml": round(sum(s.true_ml for s in result.scores), 2),
                "inference_s": round(result.seconds, 2),
            }
        )
        if shot is None:
            image, truth = task.case(result.case).load()
            picture = overview.render_case(
                image.data if image.channels == 1 else image.data[0],
                image.spacing,
                truth=truth.data,
                prediction=result.labels,
                ct=task.kind == "ct",
            )
            shot = overview.save_png(picture, out / "screenshot.png")
    means = [float(np.mean(list(r["dice"].values()))) for r in rows]
    summary = {
        "task": task.name,
        "kind": task.kind,
        "preset": preset,
        "train_minutes": round(finished.seconds / 60, 2),
        "steps": finished.step,
        "best_validation_dice": round(finished.best_dice, 4),
        "mean_dice": round(float(np.mean(means)), 4) if means else None,
        "cases": rows,
        "checkpoint": str(finished.model),
        "seconds": round(time.perf_counter() - started, 1),
    }
    metrics_path = out / "metrics.json"
    atomic_write(metrics_path, lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
    return {"screenshot": str(shot), "metrics": str(metrics_path), **summary}
