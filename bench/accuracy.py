"""Accuracy on scans no part of training saw: held-out Dice per CPU-minute on the real MSD cases in ../shared/data.

Split *k* is the split owner's: ``io.decathlon.training_split(task, TrainConfig(seed=k,
val_cases=V, test_cases=T))`` with T = 3 (heart) / 20 (hippocampus) cases held out from training,
checkpoint selection and the post-processing decision alike. By default V = 0, the final recipe:
train on every other case, the last weights are the model (averaged over the last saves where the preset
says ``average_last``; the curve below scores the raw saves), post-processing from the training labels. ``--val-cases V`` validates on V cases in the run too, and reports the in-run figure and
the checkpoint it selected beside the last one. Split 0 is ``training/make_pretrained.py``'s split,
so its checkpoint can be installed as a shipped model (``make_pretrained.py NAME --checkpoint``).

Each budget is one run per split: ``--minutes 20`` (heart) / ``--minutes 10`` (hippocampus) by
default, ``--minutes 5,10,20`` separate runs, ``--steps N`` a deterministic step budget (to compare
recipes while the cores are shared). Every checkpoint a run saves (every ``val_every`` epochs) is
scored on the held-out cases afterwards: the curve, the training minutes to ``--target`` Dice, and
the Dice at ``--snapshots`` minutes, which are snapshots of the one run (its learning rate not yet
annealed), not runs of that budget.

Reported per split and budget: held-out mean Dice as ``volseg predict`` delivers it (the checkpoint's
post-processing applied) and raw, the mean predicted / true volume ratio, false-positive over
false-negative voxels, s/step; across splits the mean and spread. Each split's final checkpoint is
written to ``OUT/<task>-split<k>-<budget>.safetensors`` (stamped with this command); the summary to
``OUT/accuracy.json`` and, as one JSON line, to stdout.

    python bench/accuracy.py --tasks heart [--minutes 20 | --minutes 5,10,20 | --steps 1075] [--splits 0,1]
        [--val-cases 0] [--snapshots 5,10] [--preset fast-cpu] [--out DIR]

``--reuse-locator EARLIER_OUT`` trains only a cascade's main net, on the locator an earlier run of the
same split and budget trained (comparisons of main-stage changes then differ in nothing else).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_volseg import events as ev
from napari_volseg import metrics
from napari_volseg import postprocess as post
from napari_volseg.config import DEFAULT_PRESET, Preset, load_preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.predict import predict_cases
from napari_volseg.engine.trainer import Trainer
from napari_volseg.io import decathlon
from napari_volseg.outputs import atomic_write, check_writable
from napari_volseg.zoo.card import TRAINED_BY_KEY, copy_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Spec:
    folder: str
    test_cases: int
    """Held out from everything; the same count as ``training/make_pretrained.py``'s."""
    minutes: str
    snapshots: str


TASKS = {
    "heart": Spec("Task02_Heart", test_cases=3, minutes="20", snapshots="5,10"),
    "hippo": Spec("Task04_Hippocampus", test_cases=20, minutes="10", snapshots="5"),
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def budget_preset(args, spec: Spec, split: int, budget: str) -> Preset:
    """The preset of one run: split ``split`` of the split owner, and a minute or step budget."""
    preset = load_preset(args.preset).with_overrides(
        threads=args.threads, seed=split, val_cases=args.val_cases, test_cases=spec.test_cases
    )
    if budget.startswith("steps="):
        epochs = max(1, math.ceil(int(budget[6:]) / preset.train.iterations_per_epoch))
        return replace(preset, train=replace(preset.train, minutes=None, epochs=epochs))
    return preset.with_overrides(minutes=float(budget))


def evaluate(path: Path | ckpt.Checkpoint, task: decathlon.Task, cases: list, **overrides) -> dict:
    """Held-out figures of one checkpoint: raw and with its post-processing (as ``volseg predict`` gives);
    ``overrides`` (``overlap=`` ...) change its inference settings (``bench/rescore.py``)."""
    checkpoint = path if isinstance(path, ckpt.Checkpoint) else ckpt.load(path)
    decision = checkpoint.postprocess
    rows = []
    for event in predict_cases(Predictor(checkpoint, postprocess=False, **overrides), task, cases):
        result = event.result
        truth = task.case(result.case).load_label()
        final = post.apply(result.labels, decision)
        scores = metrics.score_case(final, truth.data, task.num_classes, truth.spacing, with_hd95=False)
        errors = metrics.error_map(final, truth.data)
        rows.append(
            {
                "case": result.case,
                "dice": metrics.mean_dice(scores),
                "dice_raw": metrics.mean_dice(result.scores),
                "ratio": float(np.mean([s.pred_ml / s.true_ml if s.true_ml else math.nan for s in scores])),
                "fp": int((errors == 1).sum()),
                "fn": int((errors == 2).sum()),
                "infer_s": result.seconds,
            }
        )

    def mean(key: str) -> float:
        return round(float(np.mean([r[key] for r in rows])), 4)

    return {
        "dice": mean("dice"),
        "dice_raw": mean("dice_raw"),
        "volume_ratio": mean("ratio"),
        "fp_over_fn": round(sum(r["fp"] for r in rows) / max(1, sum(r["fn"] for r in rows)), 2),
        "postprocess": {"largest_component": list(decision.largest_component), "rule": decision.rule},
        "cases": {r["case"]: round(r["dice"], 4) for r in rows},
        "ratios": {r["case"]: round(r["ratio"], 3) for r in rows},
        "infer_s_per_case": mean("infer_s"),
    }


def reuse_locator(source: Path, run: Path) -> None:
    """Copy an earlier run's trained locator into ``run`` (so that resuming trains only the main net)."""
    if not (source / "model.locator.safetensors").is_file():
        source = source / run.name
    for name in ("model.locator.safetensors", "model.locator.last.safetensors"):
        shutil.copyfile(source / name, run / name)


def snapshots_at(curve: list[dict], marks: list[float], budget: str) -> dict:
    """The last scored checkpoint at or before each mark (minutes) shorter than a minute budget."""
    if budget.startswith("steps="):
        return {}
    return {
        f"{m:g}": next((c for c in reversed(curve) if c["train_min"] <= m), None) for m in marks if m < float(budget)
    }


def train_and_score(key: str, args, split: int, budget: str, out: Path, command: str, marks: list[float]) -> dict:
    spec = TASKS[key]
    task = decathlon.load_task(args.data / spec.folder)
    preset = budget_preset(args, spec, split, budget)
    cases = decathlon.training_split(task, preset.train)  # the one owner; the trainer asks it the same
    tag = f"{key}-split{split}-{budget.replace('=', '')}"
    run = out / tag
    run.mkdir(parents=True, exist_ok=True)
    model = run / "model.safetensors"
    if args.reuse_locator:
        reuse_locator(args.reuse_locator, run)
    label = f"[{key} split {split} {budget}]"
    print(f"  {label} train {len(cases.train)}, validate {len(cases.val)}, held out {[c.id for c in cases.test]}")
    snapshots, vals = [], []
    steps = locator_steps = 0
    t0 = time.perf_counter()
    first_step = None  # minutes count training (locator and main, with saving), not preprocessing
    trainer = Trainer(task, preset, model, resume=bool(args.reuse_locator), cache_root=out / "cache")
    for event in trainer.run():
        if isinstance(event, ev.Step):
            first_step = first_step or time.perf_counter()
            if event.stage:
                locator_steps = event.step
            else:
                steps = event.step
        elif isinstance(event, ev.Validated) and not event.stage:
            vals.append(event.mean)
            print(f"  {label} step {event.step:5d}  in-run validation Dice {event.mean:.4f}", flush=True)
        elif isinstance(event, ev.CheckpointSaved) and event.kind == "last":
            snap = run / f"snap-{event.step:05d}.safetensors"
            shutil.copyfile(event.path, snap)
            snapshots.append((event.step, time.perf_counter() - (first_step or t0), snap))
        elif isinstance(event, ev.Failed):
            raise SystemExit(f"{key}: {event.message}")
    train_s = time.perf_counter() - (first_step or t0)
    curve = []
    for step, seconds, snap in snapshots:
        curve.append(
            {"step": step, "train_min": round(seconds / 60, 2), "dice": evaluate(snap, task, cases.test)["dice"]}
        )
    final = evaluate(model, task, cases.test)
    chosen = ckpt.load(model)
    shipped = out / f"{tag}.safetensors"
    copy_checkpoint(model, shipped, {TRAINED_BY_KEY: f"{command}  # split {split}, budget {budget}"})
    marks = snapshots_at(curve, marks, budget)
    result = {
        "split": split,
        "budget": budget,
        "train_cases": len(cases.train),
        "val_cases": [c.id for c in cases.val],
        "heldout_cases": [c.id for c in cases.test],
        "steps": steps,
        "locator_steps": locator_steps,
        "train_min": round(train_s / 60, 2),
        "wall_min": round((time.perf_counter() - t0) / 60, 2),
        "s_per_step": round(train_s / max(1, steps + locator_steps), 3),
        "heldout": final,
        "checkpoint": str(shipped),
        "checkpoint_step": chosen.step,
        "curve": curve,
        "snapshots_of_this_run": marks,
        f"min_to_{args.target:g}": next((c["train_min"] for c in curve if c["dice"] >= args.target), None),
    }
    if cases.val:  # what validation selected, against the last weights and the in-run figure
        result["val_dice_selected"] = round(chosen.best_dice, 4) if not math.isnan(chosen.best_dice) else None
        result["val_dice_last"] = round(vals[-1], 4) if vals else None
        result["heldout_last"] = evaluate(snapshots[-1][2], task, cases.test) if snapshots else None
    print(
        f"  {label} held-out Dice {final['dice']} (raw {final['dice_raw']}, post-processing "
        f"{final['postprocess']}), volume ratio {final['volume_ratio']}, FP/FN {final['fp_over_fn']}, "
        f"{steps}+{locator_steps} steps in {result['train_min']} min; "
        + ", ".join(f"snapshot at <= {m} min: {p and p['dice']}" for m, p in marks.items()),
        flush=True,
    )
    return result


def spread(values: list[float]) -> dict:
    return {
        "mean": round(float(np.mean(values)), 4),
        "min": round(float(np.min(values)), 4),
        "max": round(float(np.max(values)), 4),
        "per_split": values,
    }


def summarise(runs: list[dict], target: float) -> dict:
    """Across the splits of one budget: mean and spread of each figure."""
    heldout = [r["heldout"] for r in runs]
    summary = {
        "heldout_dice": spread([h["dice"] for h in heldout]),
        "heldout_dice_raw": spread([h["dice_raw"] for h in heldout]),
        "volume_ratio": spread([h["volume_ratio"] for h in heldout]),
        "fp_over_fn": spread([h["fp_over_fn"] for h in heldout]),
        "s_per_step": spread([r["s_per_step"] for r in runs]),
        f"min_to_{target:g}": [r[f"min_to_{target:g}"] for r in runs],
    }
    for mark in runs[0]["snapshots_of_this_run"]:
        points = [r["snapshots_of_this_run"][mark] for r in runs]
        if all(points):
            summary[f"snapshot_{mark}min_of_this_run"] = spread([p["dice"] for p in points])
    if all("heldout_last" in r and r["heldout_last"] for r in runs):
        summary["heldout_dice_last"] = spread([r["heldout_last"]["dice"] for r in runs])
        selected = [r["val_dice_selected"] for r in runs if r["val_dice_selected"] is not None]
        summary["in_run_val_dice"] = spread(selected) if selected else None
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--tasks", default="heart,hippo", help="heart, hippo or both (comma-separated)")
    parser.add_argument("--minutes", default=None, help="budgets, one run each (default: heart 20, hippocampus 10)")
    parser.add_argument("--steps", type=int, default=None, help="a step budget (locator + main) instead of minutes")
    parser.add_argument("--splits", default="0,1", help="split seeds, e.g. 0,1 or 0-4 (split 0: make_pretrained's)")
    parser.add_argument("--val-cases", type=int, default=0, help="in-run validation cases (default 0: none)")
    parser.add_argument("--snapshots", default=None, help="minutes at which to report the run's Dice (heart 5,10)")
    parser.add_argument("--target", type=float, default=0.85, help="report the training minutes to this Dice")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=SHARED, help="folder holding Task02_Heart / Task04_Hippocampus")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--reuse-locator",
        type=Path,
        default=None,
        help="an earlier --out of the same budgets and splits (or one run folder of it): train only the cascade's "
        "main net, on that run's locator",
    )
    args = parser.parse_args()
    keys = args.tasks.split(",")
    missing = [TASKS[k].folder for k in keys if not (args.data / TASKS[k].folder).is_dir()]
    if missing:
        print(f"no {', '.join(missing)} in {args.data}; nothing to measure", file=sys.stderr)
        return 1
    out = check_writable(args.out or Path(tempfile.mkdtemp(prefix="volseg-bench-")), folder=True, what="--out")
    command = "python bench/accuracy.py " + shlex.join(sys.argv[1:])
    lo, _, hi = args.splits.partition("-")
    splits = list(range(int(lo), int(hi) + 1)) if hi else [int(v) for v in args.splits.split(",")]
    summary = {"bench": "accuracy", "command": command, "preset": args.preset, "val_cases": args.val_cases}
    for key in keys:
        spec = TASKS[key]
        marks = [float(m) for m in (args.snapshots if args.snapshots is not None else spec.snapshots).split(",") if m]
        budgets = [f"steps={args.steps}"] if args.steps else (args.minutes or spec.minutes).split(",")
        runs = [
            train_and_score(key, args, split, budget, out, command, marks) for budget in budgets for split in splits
        ]
        by_budget = {b: summarise([r for r in runs if r["budget"] == b], args.target) for b in budgets}
        summary[key] = {"task": spec.folder, "test_cases": spec.test_cases, "by_budget": by_budget, "runs": runs}
        for b, s in by_budget.items():
            snaps = "; ".join(f"{k.replace('_', ' ')} {v['mean']}" for k, v in s.items() if k.startswith("snapshot"))
            print(
                f"{spec.folder} {b}: held-out Dice {s['heldout_dice']['mean']} (splits {s['heldout_dice']['per_split']}, "
                f"raw {s['heldout_dice_raw']['mean']}); volume ratio {s['volume_ratio']['mean']}; FP/FN "
                f"{s['fp_over_fn']['mean']}; min to {args.target:g}: {s[f'min_to_{args.target:g}']}; "
                f"{s['s_per_step']['mean']} s/step" + (f"; {snaps}" if snaps else "")
            )
    summary["peak_rss_gb"] = round(peak_rss_gb(), 2)
    atomic_write(out / "accuracy.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=1)))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
