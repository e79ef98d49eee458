"""Accuracy on cases no part of training saw: Dice per CPU-minute on the real MSD cases in ../shared/data.

For each split the task's labelled cases are dealt into ``--folds`` folds (shuffled by ``--seed``);
fold *i* is held out (neither training nor checkpoint selection nor the post-processing decision
sees it), ``--val-cases`` of the rest validate in the run (its own figure, printed beside the
held-out one) and the others train. Each split trains once per budget (``--minutes 5,10,20`` or a
deterministic ``--steps N``, which is what to compare recipes with while the cores are shared).
Every in-run validation's 'last' checkpoint is kept as a snapshot and scored on the held-out cases,
giving a curve of held-out Dice against training seconds and the time to reach ``--target``.

Reported per split and budget: held-out mean Dice of the final checkpoint with its post-processing
(and raw, and with largest-component everywhere), the in-run validation Dice, the mean predicted /
true volume ratio, false-positive / false-negative voxels, the curve; across splits the mean and
spread. Ends with one JSON line.

    python bench/accuracy.py --tasks heart [--minutes 5,10,20 | --steps 1075] [--splits 0,1] [--preset fast-cpu]

``--reuse-locator EARLIER_OUT`` trains only a cascade's main net, on the locator an earlier run of the same
split trained (comparisons of main-stage changes then differ in nothing else).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_volseg import postprocess as post
from napari_volseg.engine import events as ev
from napari_volseg.engine.checkpoint import load as load_checkpoint
from napari_volseg.engine.config import load_preset
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.train import Trainer
from napari_volseg.io import decathlon

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Spec:
    folder: str
    folds: int
    val_cases: int
    minutes: str


TASKS = {
    "heart": Spec("Task02_Heart", folds=5, val_cases=3, minutes="20"),
    "hippo": Spec("Task04_Hippocampus", folds=10, val_cases=20, minutes="10"),
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def split_cases(task: decathlon.Task, folds: int, fold: int, n_val: int, seed: int):
    """(train, validation, held-out) cases of split ``fold`` of a ``folds``-fold deal shuffled by ``seed``."""
    order = sorted(task.cases, key=lambda c: c.id)
    random.Random(seed).shuffle(order)
    held = order[fold::folds]
    rest = [c for c in order if c not in held]
    return rest[n_val:], rest[:n_val], held


def score(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> dict:
    """Per foreground class: Dice, predicted/true volume ratio, false positives and negatives (voxels)."""
    out = {"dice": [], "ratio": [], "fp": [], "fn": []}
    for k in range(1, num_classes):
        p, t = pred == k, truth == k
        inter = int(np.logical_and(p, t).sum())
        out["dice"].append(2 * inter / max(1, int(p.sum()) + int(t.sum())))
        out["ratio"].append(int(p.sum()) / max(1, int(t.sum())))
        out["fp"].append(int(p.sum()) - inter)
        out["fn"].append(int(t.sum()) - inter)
    return out


def evaluate(path: Path, cases: list, num_classes: int, loaded: dict) -> dict:
    """Held-out figures of one checkpoint: raw, largest-component everywhere, and as its decision says."""
    predictor = Predictor(path, postprocess=False)
    decision = predictor.checkpoint.postprocess
    every = tuple(range(1, num_classes))
    rows, seconds = [], []
    for case in cases:
        if case.id not in loaded:
            loaded[case.id] = case.load()
        image, truth = loaded[case.id]
        t = time.perf_counter()
        raw = predictor.predict(image).labels
        decided = post.apply(raw, decision)
        seconds.append(time.perf_counter() - t)
        rows.append(
            {
                "case": case.id,
                "raw": score(raw, truth.data, num_classes),
                "lcc": score(post.keep_largest(raw, every), truth.data, num_classes),
                "final": score(decided, truth.data, num_classes),
            }
        )
    predictor.release()

    def mean(kind: str, key: str) -> float:
        return round(float(np.mean([np.mean(r[kind][key]) for r in rows])), 4)

    return {
        "dice": mean("final", "dice"),
        "dice_raw": mean("raw", "dice"),
        "dice_lcc": mean("lcc", "dice"),
        "volume_ratio": mean("final", "ratio"),
        "fp_over_fn": round(
            float(
                np.sum([np.sum(r["final"]["fp"]) for r in rows])
                / max(1, np.sum([np.sum(r["final"]["fn"]) for r in rows]))
            ),
            2,
        ),
        "postprocess": list(decision.largest_component),
        "cases": {r["case"]: [round(d, 4) for d in r["final"]["dice"]] for r in rows},
        "ratios": {r["case"]: [round(d, 3) for d in r["final"]["ratio"]] for r in rows},
        "infer_s_per_case": round(float(np.mean(seconds)), 2),
    }


def train_and_score(key: str, args, fold: int, budget: str, out: Path, loaded: dict) -> dict:
    spec = TASKS[key]
    task = decathlon.load_task(SHARED / spec.folder)
    n_val = spec.val_cases if args.val_cases is None else args.val_cases
    train, val, held = split_cases(task, spec.folds, fold, n_val, args.seed)
    preset = load_preset(args.preset).with_overrides(threads=args.threads)
    if budget.startswith("steps="):
        epochs = max(1, math.ceil(int(budget[6:]) / preset.train.iterations_per_epoch))
        preset = replace(preset, train=replace(preset.train, minutes=None, epochs=epochs))
    else:
        preset = preset.with_overrides(minutes=float(budget))
    run = out / f"{key}-split{fold}-{budget.replace('=', '')}"
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / "model.safetensors"
    resume = False
    if args.reuse_locator:  # A/B of main-stage changes: the same trained locator, not a retrained one
        source = args.reuse_locator
        if not (source / "model.locator.safetensors").is_file():
            source = source / f"{key}-split{fold}-{budget.replace('=', '')}"
        for name in ("model.locator.safetensors", "model.locator.last.safetensors"):
            shutil.copyfile(source / name, run / name)
        resume = True
    snapshots, vals = [], []
    steps = locator_steps = 0
    t0 = time.perf_counter()
    trainer = Trainer(
        task, preset, ckpt_path, resume=resume, cache_root=out / "cache", train_cases=train, val_cases=val
    )
    first_step = None  # the curve's minutes count training (and validation), not preprocessing
    for event in trainer.run():
        if isinstance(event, ev.Step):
            first_step = first_step or time.perf_counter()
            if event.stage:
                locator_steps = event.step
            else:
                steps = event.step
        elif isinstance(event, ev.Validated) and not event.stage:
            vals.append({"step": event.step, "seconds": round(time.perf_counter() - t0, 1), "val": event.mean})
            print(
                f"  [{key} split {fold} {budget}] step {event.step:5d} {vals[-1]['seconds'] / 60:5.1f} min  "
                f"in-run val Dice {event.mean:.4f}",
                flush=True,
            )
        elif isinstance(event, ev.CheckpointSaved) and event.kind == "last":
            snap = run / f"snap-{event.step:05d}.safetensors"
            shutil.copyfile(event.path, snap)
            snapshots.append((event.step, time.perf_counter() - first_step, snap))
        elif isinstance(event, ev.Failed):
            raise SystemExit(f"{key}: {event.message}")
    wall_s = time.perf_counter() - t0
    train_s = time.perf_counter() - (first_step or t0)
    curve = []
    for step, seconds, snap in snapshots:
        figures = evaluate(snap, held, task.num_classes, loaded)
        curve.append({"step": step, "train_min": round(seconds / 60, 2), "heldout": figures["dice"]})
    final = evaluate(ckpt_path, held, task.num_classes, loaded)
    last = evaluate(snapshots[-1][2], held, task.num_classes, loaded) if snapshots else None
    chosen = load_checkpoint(ckpt_path)
    reach = next((c["train_min"] for c in curve if c["heldout"] >= args.target), None)
    result = {
        "split": fold,
        "budget": budget,
        "train": len(train),
        "val": [c.id for c in val],
        "heldout_cases": [c.id for c in held],
        "steps": steps,
        "locator_steps": locator_steps,
        "train_min": round(train_s / 60, 2),
        "wall_min": round(wall_s / 60, 2),
        "s_per_step": round(train_s / max(1, steps + locator_steps), 3),
        "checkpoint_step": chosen.step,
        "val_dice_selected": round(chosen.best_dice, 4) if not math.isnan(chosen.best_dice) else None,
        "val_dice_last": round(vals[-1]["val"], 4) if vals else None,
        "heldout": final,
        "heldout_last": {k: last[k] for k in ("dice", "dice_raw", "dice_lcc", "volume_ratio")} if last else None,
        "curve": curve,
        f"min_to_{args.target}": reach,
    }
    print(
        f"  [{key} split {fold} {budget}] held-out Dice {final['dice']} (raw {final['dice_raw']}, "
        f"lcc {final['dice_lcc']}, pp {final['postprocess']}), volume ratio {final['volume_ratio']}, "
        f"in-run val {result['val_dice_selected']}, {steps}+{locator_steps} steps in {result['train_min']} min",
        flush=True,
    )
    return result


def summarise(runs: list[dict]) -> dict:
    dice = [r["heldout"]["dice"] for r in runs]
    val = [r["val_dice_selected"] for r in runs if r["val_dice_selected"] is not None]
    return {
        "heldout_dice_mean": round(float(np.mean(dice)), 4),
        "heldout_dice_per_split": dice,
        "heldout_dice_spread": round(float(np.max(dice) - np.min(dice)), 4),
        "heldout_dice_raw_mean": round(float(np.mean([r["heldout"]["dice_raw"] for r in runs])), 4),
        "heldout_dice_last_mean": round(
            float(np.mean([r["heldout_last"]["dice"] for r in runs if r["heldout_last"]])), 4
        ),
        "in_run_val_dice_mean": round(float(np.mean(val)), 4) if val else None,
        "volume_ratio_mean": round(float(np.mean([r["heldout"]["volume_ratio"] for r in runs])), 3),
        "steps_mean": round(float(np.mean([r["steps"] + r["locator_steps"] for r in runs])), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast-cpu")
    parser.add_argument("--tasks", default="heart,hippo")
    parser.add_argument("--minutes", default=None, help="comma-separated budgets (default: heart 20, hippocampus 10)")
    parser.add_argument("--steps", type=int, default=None, help="a step budget (locator + main) instead of minutes")
    parser.add_argument("--splits", default="0,1", help="which held-out folds to run, e.g. 0,1 or 0-4")
    parser.add_argument("--seed", type=int, default=0, help="shuffles the cases before they are dealt into folds")
    parser.add_argument("--val-cases", type=int, default=None, help="in-run validation cases (heart 3, hippo 20)")
    parser.add_argument("--target", type=float, default=0.85, help="report the training minutes to this Dice")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--reuse-locator",
        type=Path,
        default=None,
        help="an earlier --out of the same budgets and splits (or one run folder of it): train only the cascade's "
        "main net, on that run's locator (it is not trained further if this budget's locator stage is shorter)",
    )
    args = parser.parse_args()
    if not (SHARED / "Task02_Heart").is_dir():
        print(f"no real data at {SHARED}; nothing to measure", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="volseg-bench-"))
    if "-" in args.splits:
        lo, hi = (int(v) for v in args.splits.split("-"))
        folds = list(range(lo, hi + 1))
    else:
        folds = [int(v) for v in args.splits.split(",")]
    summary = {"bench": "accuracy", "preset": args.preset, "out": str(out)}
    for key in args.tasks.split(","):
        budgets = [f"steps={args.steps}"] if args.steps else (args.minutes or TASKS[key].minutes).split(",")
        loaded: dict = {}
        runs = [train_and_score(key, args, fold, budget, out, loaded) for budget in budgets for fold in folds]
        summary[key] = {
            "task": TASKS[key].folder,
            "by_budget": {b: summarise([r for r in runs if r["budget"] == b]) for b in budgets},
            "runs": runs,
        }
        for b, s in summary[key]["by_budget"].items():
            print(
                f"{TASKS[key].folder} {b}: held-out Dice {s['heldout_dice_mean']} per split {s['heldout_dice_per_split']} "
                f"(raw {s['heldout_dice_raw_mean']}, last checkpoint {s['heldout_dice_last_mean']}); in-run val "
                f"{s['in_run_val_dice_mean']}; volume ratio {s['volume_ratio_mean']}; {s['steps_mean']} steps"
            )
    summary["peak_rss_gb"] = round(peak_rss_gb(), 2)
    (out / "accuracy.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
