"""Accuracy per CPU-minute on the real MSD cases in ../shared/data.

Trains a preset under a wall-clock budget on Task02_Heart (12 train / 3 validation) and
Task04_Hippocampus (seeded split), then predicts each validation case from its NIfTI file and
scores it on the source grid. Prints a table and ends with one JSON line of the figures.

    python bench/accuracy.py [--preset NAME (default fast-cpu)] [--heart-minutes 20] [--hippo-minutes 10] [--tasks heart,hippo]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_volseg import metrics, paths
from napari_volseg.engine import events as ev
from napari_volseg.engine.config import load_preset
from napari_volseg.engine.predict import predict_cases
from napari_volseg.engine.train import Trainer
from napari_volseg.io import decathlon

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = {"heart": ("Task02_Heart", 3), "hippo": ("Task04_Hippocampus", 20)}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_task(key: str, preset_name: str, minutes: float, out: Path, threads: int | None) -> dict:
    folder, n_val = TASKS[key]
    task = decathlon.load_task(SHARED / folder)
    preset = load_preset(preset_name).with_overrides(minutes=minutes, val_cases=n_val, threads=threads)
    ckpt_path = out / f"{key}.safetensors"
    steps, locator_steps = [], []
    t0 = time.perf_counter()
    train_seconds = None
    for event in Trainer(task, preset, ckpt_path, cache_root=out / "cache").run():
        if isinstance(event, ev.Step):
            (locator_steps if event.stage else steps).append((event.step, event.seconds))
        elif isinstance(event, ev.Validated):
            stage = f" ({event.stage})" if event.stage else ""
            print(
                f"  [{key}{stage}] step {event.step:5d}  {event.seconds / 60:5.1f} min  val Dice {event.mean:.4f}",
                flush=True,
            )
        elif isinstance(event, ev.Failed):
            raise SystemExit(f"{key}: {event.message}")
        elif isinstance(event, ev.Finished):
            train_seconds = event.seconds
    s_per_it = (steps[-1][1] - steps[0][1]) / max(1, steps[-1][0] - steps[0][0]) if len(steps) > 1 else float("nan")
    rows, infer_s = [], []
    split = decathlon.training_split(task, preset.train)
    for event in predict_cases(ckpt_path, task, split.val):
        result = event.result
        infer_s.append(result.seconds)
        rows.append(
            {
                "case": result.case,
                "dice": [round(s.dice, 4) for s in result.scores],
                "mean": round(metrics.mean_dice(result.scores), 4),
                "hd95": [round(s.hd95, 2) for s in result.scores],
                "infer_s": round(result.seconds, 2),
                "voxels": int(np.prod(result.geometry.shape_zyx)),
            }
        )
    return {
        "task": folder,
        "preset": preset_name,
        "minutes": minutes,
        "steps": steps[-1][0] if steps else 0,
        "locator_steps": locator_steps[-1][0] if locator_steps else 0,
        "s_per_iteration": round(s_per_it, 3),
        "train_wall_min": round((train_seconds or 0) / 60, 2),
        "mean_dice": round(float(np.mean([r["mean"] for r in rows])), 4),
        "cases": rows,
        "infer_s_per_case": round(float(np.mean(infer_s)), 2),
        "total_min": round((time.perf_counter() - t0) / 60, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=paths.DEFAULT_PRESET)
    parser.add_argument("--heart-minutes", type=float, default=20.0)
    parser.add_argument("--hippo-minutes", type=float, default=10.0)
    parser.add_argument("--tasks", default="heart,hippo")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (SHARED / "Task02_Heart").is_dir():
        print(f"no real data at {SHARED}; nothing to measure", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="volseg-bench-"))
    results = {}
    for key in args.tasks.split(","):
        minutes = args.heart_minutes if key == "heart" else args.hippo_minutes
        results[key] = run_task(key, args.preset, minutes, out, args.threads)
    print(f"\n{'task':<20}{'case':<18}{'Dice per class':<22}{'HD95 mm':<20}{'infer s':>8}")
    for r in results.values():
        for c in r["cases"]:
            print(f"{r['task']:<20}{c['case']:<18}{str(c['dice']):<22}{str(c['hd95']):<20}{c['infer_s']:>8}")
        print(
            f"{r['task']:<20}{'MEAN':<18}{r['mean_dice']:<22}{'':<20}{r['infer_s_per_case']:>8}"
            f"   ({r['steps']} steps + {r['locator_steps']} locator steps, {r['s_per_iteration']} s/it, "
            f"{r['train_wall_min']} min training)"
        )
    summary = {"bench": "accuracy", "peak_rss_gb": round(peak_rss_gb(), 2)}
    for key, r in results.items():
        summary[key] = {
            k: r[k]
            for k in (
                "task",
                "preset",
                "minutes",
                "steps",
                "locator_steps",
                "s_per_iteration",
                "mean_dice",
                "infer_s_per_case",
                "train_wall_min",
            )
        }
        summary[key]["dice_per_case"] = {c["case"]: c["mean"] for c in r["cases"]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
