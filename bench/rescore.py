"""Re-score the checkpoints of earlier `bench/accuracy.py` runs on their own held-out cases with other inference settings.

    python bench/rescore.py --task ../shared/data/Task02_Heart --overlaps 0.25,0.5,0.75 RUN_DIR [RUN_DIR ...]

Each RUN_DIR is an `--out` folder of `bench/accuracy.py` (its accuracy.json names each run's checkpoint and held-out
cases). The weights are unchanged; only the sliding-window overlap differs, and a cascade boxes the locator's
largest piece where its training labels were one piece (as the code decides now; older checkpoints lack the key).
Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from accuracy import evaluate  # bench/accuracy.py: the held-out figures of one checkpoint

from napari_volseg import postprocess as post
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, required=True, help="the MSD task folder the runs trained on")
    parser.add_argument("--overlaps", default="0.25,0.5", help="comma-separated sliding-window overlaps")
    parser.add_argument("runs", nargs="+", type=Path, help="`bench/accuracy.py --out` folders")
    args = parser.parse_args()
    try:  # bad arguments end in one line (argparse's usage error), not a traceback
        overlaps = [float(x) for x in args.overlaps.split(",")]
    except ValueError:
        parser.error(f"--overlaps: comma-separated numbers, got {args.overlaps!r}")
    if not all(0.0 <= ov < 1.0 for ov in overlaps):
        parser.error(f"--overlaps: each within [0, 1), got {args.overlaps!r}")
    missing = [str(r) for r in args.runs if not (r / "accuracy.json").is_file()]
    if missing:
        parser.error(f"no accuracy.json (a bench/accuracy.py --out folder) in {', '.join(missing)}")
    try:
        task = decathlon.load_task(args.task)
    except VolsegError as exc:
        parser.error(str(exc))
    rows = []
    print(f"{'run':<22}{'budget':>12}" + "".join(f"{'ov ' + str(ov):>10}" for ov in overlaps))
    for run_dir in args.runs:
        acc = json.loads((run_dir / "accuracy.json").read_text())
        runs = (r for v in acc.values() if isinstance(v, dict) and v.get("task") == args.task.name for r in v["runs"])
        for run in runs:
            path = Path(run["checkpoint"])
            path = path if path.is_file() else run_dir / path.name
            checkpoint = ckpt.load(path)
            if checkpoint.locator is not None and not checkpoint.locator.one_piece:
                decided = post.one_piece_of_cases(task.case(c) for c in checkpoint.train_cases)
                locator = dataclasses.replace(checkpoint.locator, one_piece=bool(decided))
                checkpoint = dataclasses.replace(checkpoint, locator=locator)
            cases = [task.case(c) for c in run["heldout_cases"]]
            by = {str(ov): evaluate(checkpoint, task, cases, overlap=ov) for ov in overlaps}
            rows.append({"run": run_dir.name, "budget": run.get("budget"), "checkpoint": path.name, "by_overlap": by})
            print(
                f"{run_dir.name:<22}{str(run.get('budget')):>12}"
                + "".join(f"{by[str(ov)]['dice']:>10.4f}" for ov in overlaps),
                flush=True,
            )
    means = {str(ov): round(float(np.mean([r["by_overlap"][str(ov)]["dice"] for r in rows])), 4) for ov in overlaps}
    print(f"{'MEAN':<34}" + "".join(f"{means[str(ov)]:>10.4f}" for ov in overlaps))
    print(json.dumps({"bench": "rescore", "task": task.name, "overlaps": overlaps, "mean_dice": means, "runs": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
