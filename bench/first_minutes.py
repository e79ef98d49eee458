"""The Train button's first minutes: held-out Dice of the model Stop would leave after 1, 2, 3, 5 and 10 minutes.

Each run is the Train tab's: its default preset (``fast-cpu``, 10 minutes, validation cases chosen by the split owner,
20 %), trained by :class:`~napari_volseg.engine.trainer.Trainer` as the button's worker drives it, from a cold
preprocessing cache (a first press). The clock starts when the run starts (preparing the cases counts). At each
mark the run's model file (what Stop would leave at that moment: the best validated weights, a cascade's coarse
locator until its main net validates better) is copied aside; afterwards every copy is scored on cases the run
neither trained nor validated on (3 heart / 20 hippocampus / 2 synthetic cases held out, split *k* = seed *k*),
with the time ``volseg predict`` takes per case and the quality line the Train tab shows.

``--start scratch`` trains from scratch; ``--start warm`` from another task's zoo model (heart from
``msd-hippocampus``, hippocampus from ``msd-heart``, the synthetic CT task from ``msd-heart``): a task whose own
model is not the one started from.

    python bench/first_minutes.py [--tasks heart,hippo,synthetic] [--splits 0,1] [--start scratch,warm]
        [--minutes 10] [--marks 1,2,3,5,10] [--out DIR]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from accuracy import SHARED, evaluate, peak_rss_gb

from napari_volseg import events as ev
from napari_volseg.config import DEFAULT_PRESET, load_preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.quality import of_file
from napari_volseg.engine.trainer import Trainer
from napari_volseg.io import decathlon, synthetic
from napari_volseg.outputs import atomic_write, check_writable
from napari_volseg.zoo.registry import resolve

TASKS = {  # folder (None: written here), held-out cases, the zoo model a warm start begins from
    "heart": ("Task02_Heart", 3, "msd-hippocampus"),
    "hippo": ("Task04_Hippocampus", 20, "msd-heart"),
    "synthetic": (None, 2, "msd-heart"),
}


def load(key: str, args) -> decathlon.Task:
    folder = TASKS[key][0]
    if folder is None:  # the demo's CT phantom, 12 cases
        where = args.out / "synthetic-ct"
        if not (where / "dataset.json").is_file():
            synthetic.write_task(where, cases=12, kind="ct")
        return decathlon.load_task(where)
    return decathlon.load_task(args.data / folder)


def run(key: str, split: int, start: str, args, marks: list[float]) -> dict:
    task = load(key, args)
    held_out, warm_name = TASKS[key][1], TASKS[key][2]
    preset = load_preset(args.preset).with_overrides(seed=split, test_cases=held_out, minutes=args.minutes)
    folder = args.out / f"{key}-split{split}-{start}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model = folder / "model.safetensors"
    warm = ckpt.load(resolve(warm_name)) if start == "warm" else None
    trainer = Trainer(
        task, preset, model, cache_root=folder / "cache", warm_from=warm, warm_name=warm_name if warm else ""
    )
    split_cases = trainer.split
    label = f"[{key} split {split} {start}]"
    print(
        f"  {label} train {len(split_cases.train)}, validate {len(split_cases.val)}, held out {len(split_cases.test)}",
        flush=True,
    )
    pending = sorted(marks)
    snaps: dict[float, Path | None] = {}
    steps = {"locator": 0, "": 0}
    t0 = time.perf_counter()
    for event in trainer.run():
        elapsed = (time.perf_counter() - t0) / 60
        while pending and elapsed >= pending[0]:  # what Stop would leave now
            mark = pending.pop(0)
            snaps[mark] = shutil.copyfile(model, folder / f"at-{mark:g}min.safetensors") if model.is_file() else None
        if isinstance(event, ev.Step):
            steps[event.stage] = event.step
        elif isinstance(event, ev.Validated):
            print(
                f"  {label} {elapsed:5.2f} min {event.stage or 'main'} step {event.step}: validation Dice "
                f"{event.mean:.3f}",
                flush=True,
            )
        elif isinstance(event, ev.Failed):
            raise SystemExit(f"{label}: {event.message}")
    for mark in pending:  # the run ended before this mark: its final model
        snaps[mark] = shutil.copyfile(model, folder / f"at-{mark:g}min.safetensors") if model.is_file() else None
    points = {}
    for mark, snap in snaps.items():
        if snap is None:
            points[f"{mark:g}"] = None
            continue
        scored = evaluate(snap, task, split_cases.test)
        meta = ckpt.load(snap)
        points[f"{mark:g}"] = {
            "dice": scored["dice"],
            "volume_ratio": scored["volume_ratio"],
            "predict_s_per_case": scored["infer_s_per_case"],
            "quality": of_file(snap).line,
            "network": ("locator" if meta.locator is None else "main") if steps["locator"] else "",
            "step": meta.step,
        }
        print(
            f"  {label} at {mark:g} min: held-out Dice {scored['dice']:.3f}, predict "
            f"{scored['infer_s_per_case']:.1f} s/case, {points[f'{mark:g}']['quality']}",
            flush=True,
        )
    return {
        "task": key,
        "split": split,
        "start": start,
        "warm_from": warm_name if warm else None,
        "steps": steps,
        "marks": points,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="heart,hippo,synthetic")
    parser.add_argument("--splits", default="0,1")
    parser.add_argument("--start", default="scratch,warm")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="the Train tab's default, or another to compare")
    parser.add_argument("--marks", default="1,2,3,5,10")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = check_writable(args.out or Path(tempfile.mkdtemp(prefix="volseg-first-")), folder=True, what="--out")
    marks = [float(m) for m in args.marks.split(",")]
    runs = []
    for key in args.tasks.split(","):
        if TASKS[key][0] and not (args.data / TASKS[key][0]).is_dir():
            print(f"no {TASKS[key][0]} in {args.data}: skipped", file=sys.stderr)
            continue
        for split in (int(s) for s in args.splits.split(",")):
            for start in args.start.split(","):
                runs.append(run(key, split, start, args, marks))
    print()
    print("| task | split | start | " + " | ".join(f"{m:g} min" for m in marks) + " |")
    print("|---|---|---|" + "---|" * len(marks))
    for r in runs:
        cells = []
        for m in marks:
            p = r["marks"].get(f"{m:g}")
            where = f"{p['network']}, " if p and p["network"] else ""
            cells.append("no model" if p is None else f"{p['dice']:.3f} ({where}{p['predict_s_per_case']:.1f} s)")
        start = r["start"] + (f" ({r['warm_from']})" if r["warm_from"] else "")
        print(f"| {r['task']} | {r['split']} | {start} | " + " | ".join(cells) + " |")
    summary = {
        "bench": "first_minutes",
        "command": "python bench/first_minutes.py " + shlex.join(sys.argv[1:]),
        "runs": runs,
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    atomic_write(args.out / "first_minutes.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=1)))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
