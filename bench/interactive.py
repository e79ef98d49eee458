"""Interactive segmentation on held-out MSD cases: the field's simulated-annotator protocol, in a table and one JSON line.

    python bench/interactive.py [--data ../shared/data] [--hippo-cases 20] [--agnostic-heart FILE]
                                [--agnostic-hippocampus FILE] [--learning] [--learning-minutes 1]

The held-out cases are those the shipped task models never trained on (read from their checkpoints): 3 heart MRIs,
20 hippocampus MRIs (each of its two classes is an object). Per object, the first click is at the object's interior
voxel farthest from its border, each next one at the centre of the largest error region (positive in a missed part,
negative in a false one), up to 20 clicks; Dice after 1, 3, 5 and 10 clicks, NoC@85 / NoC@90 (clicks to reach that
Dice, 20 when never), Dice after one box (the object's rectangle on the slice where it is largest) and after the
box plus 3 clicks. Latency: every interaction's whole path (prompt to mask on the scan's grid), median and p95.
Rows:
- corrective: the shipped task model's prediction, then clicks with the task's promptable model;
- scratch: the task's promptable model from an empty mask;
- agnostic: the class-agnostic model trained without that task (``--agnostic-heart``: trained without the heart);
- walker: scikit-image's random walker with the same protocol;
- brush: the voxels a brush must change to turn the task model's prediction into the truth (``bench/annotate.py``'s
  count).
``--learning``: the class-agnostic model without the heart learns from accepted heart cases: NoC@90 on the held-out
hearts before, and after fine-tuning on 2 and 5 accepted training hearts (``--learning-minutes`` per fine-tune).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.interactive import InteractiveSession, open_segmenter
from napari_volseg.interactive import simulate as sim
from napari_volseg.interactive.data import structures_of_task
from napari_volseg.interactive.net import PromptNet
from napari_volseg.io import decathlon
from napari_volseg.zoo.registry import PRETRAINED_DIR

ROOT = Path(__file__).resolve().parents[1]
CLICKS = (1, 3, 5, 10)
CAP = 20
TASKS = {"heart": ("Task02_Heart", "msd-heart"), "hippocampus": ("Task04_Hippocampus", "msd-hippocampus")}


def held_out(data: Path, key: str, limit: int | None = None):
    folder, model = TASKS[key]
    task = decathlon.load_task(data / folder)
    seen = set(ckpt.load(PRETRAINED_DIR / f"{model}.safetensors").train_cases)
    ids = [c.id for c in task.cases if c.label_path is not None and c.id not in seen]
    return task, ids[:limit] if limit else ids


def run_clicks(segmenter, structure, start: np.ndarray | None, latencies: list, box: bool = False) -> dict:
    """The simulated annotator on one object: Dice after each click (and the box runs when asked)."""
    session = InteractiveSession(segmenter, structure.image, structure.spacing)
    if start is not None:
        session.start_from(start)
    dices = []
    click = (
        sim.first_click(structure.mask, structure.spacing)
        if start is None
        else sim.next_click(session.mask, structure.mask, structure.spacing)
    )
    for k in range(CAP):
        if click is None:
            dices += [dices[-1] if dices else 1.0] * (CAP - len(dices))
            break
        session.click(click.zyx, click.positive)
        latencies.append(session.last.seconds)
        dices.append(sim.dice(session.mask, structure.mask))
        if k + 1 >= max(CLICKS) and dices[-1] >= 0.9:
            dices += [dices[-1]] * (CAP - len(dices))
            break
        click = sim.next_click(session.mask, structure.mask, structure.spacing)
    result = {"dice": dices, "start": sim.dice(start, structure.mask) if start is not None else 0.0}
    if box:
        session = InteractiveSession(segmenter, structure.image, structure.spacing)
        session.box(*_box_args(sim.box_of(structure.mask)))
        latencies.append(session.last.seconds)
        result["box"] = sim.dice(session.mask, structure.mask)
        for _ in range(3):
            click = sim.next_click(session.mask, structure.mask, structure.spacing)
            if click is None:
                break
            session.click(click.zyx, click.positive)
            latencies.append(session.last.seconds)
        result["box3"] = sim.dice(session.mask, structure.mask)
    return result


def _box_args(box):
    return box.z, box.yx


def summarise(name: str, results: list[dict]) -> dict:
    curves = np.asarray([r["dice"] for r in results])
    row = {"row": name, "objects": len(results), "start": round(float(np.mean([r["start"] for r in results])), 4)}
    for k in CLICKS:
        row[f"dice@{k}"] = round(float(curves[:, k - 1].mean()), 4)
    for t in (0.85, 0.9):
        row[f"noc@{int(t * 100)}"] = round(float(np.mean([sim.clicks_to_reach(list(c), t, CAP) for c in curves])), 2)
    if "box" in results[0]:
        row["box"] = round(float(np.mean([r["box"] for r in results])), 4)
        row["box+3"] = round(float(np.mean([r["box3"] for r in results])), 4)
    return row


def predictions(model: str, task, ids: list[str]) -> dict[str, np.ndarray]:
    from napari_volseg.engine.infer import Predictor

    predictor = Predictor(PRETRAINED_DIR / f"{model}.safetensors")
    try:
        return {i: predictor.predict(task.case(i).load_image()).labels for i in ids}
    finally:
        predictor.release()


def learning_curve(data: Path, agnostic: Path, minutes: float, latencies: list) -> list[dict]:
    """NoC@90 on the held-out hearts as a model without the heart learns from accepted training hearts."""
    from napari_volseg.interactive.train import InteractiveTrainer

    task, test_ids = held_out(data, "heart")
    train_ids = sorted(set(c.id for c in task.cases if c.label_path is not None) - set(test_ids))
    tests = structures_of_task(task, test_ids)
    checkpoint = ckpt.load(agnostic)
    curve = []
    accepted: list[str] = []
    for target in (0, 2, 5):
        if target:
            accepted = train_ids[:target]
            with tempfile.TemporaryDirectory() as tmp:
                trainer = InteractiveTrainer(
                    structures_of_task(task, accepted),
                    [],
                    Path(tmp) / "tuned.safetensors",
                    minutes=minutes,
                    settings=PromptNet(checkpoint).settings,
                    warm=ckpt.load(agnostic),
                    lr=1e-3,
                )
                for event in trainer.run():
                    last = event
                checkpoint = ckpt.load(last.best_path)
        net = PromptNet(checkpoint)
        results = [run_clicks(net, s, None, latencies) for s in tests]
        row = summarise(f"after {target} accepted", results)
        curve.append({"accepted": target, "noc@90": row["noc@90"], "noc@85": row["noc@85"], "dice@3": row["dice@3"]})
        print(f"  learning: {target} accepted hearts -> NoC@90 {row['noc@90']}, Dice@3 {row['dice@3']}", flush=True)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--hippo-cases", type=int, default=20)
    parser.add_argument(
        "--agnostic-heart", type=Path, default=None, help="class-agnostic model trained without the heart"
    )
    parser.add_argument("--agnostic-hippocampus", type=Path, default=None, help="... trained without the hippocampus")
    parser.add_argument("--learning", action="store_true", help="also the learning-from-the-user curve (heart)")
    parser.add_argument("--learning-minutes", type=float, default=1.0)
    parser.add_argument("--rows", default="corrective,scratch,agnostic,walker", help="rows to run")
    parser.add_argument("--tasks", default="heart,hippocampus")
    parser.add_argument("--models", type=Path, default=PRETRAINED_DIR, help="folder of the task's promptable models")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} (2 cores; the latencies are on idle cores only when this is near 0)")
    rows, latency = [], {}
    wanted = set(args.rows.split(","))
    for key, limit in (("heart", None), ("hippocampus", args.hippo_cases)):
        if key not in args.tasks.split(","):
            continue
        task, ids = held_out(args.data, key, limit)
        structures = structures_of_task(task, ids)
        value_of = {name: value for value, name in task.labels.items()}
        interactive = PromptNet(ckpt.load(args.models / f"{TASKS[key][1]}-interactive.safetensors"))
        predicted = predictions(TASKS[key][1], task, ids)
        starts = [predicted[s.case_id] == value_of[s.name.split("/", 1)[1]] for s in structures]
        brush = [int((p != s.mask).sum()) for p, s in zip(starts, structures, strict=True)]
        runs = {}
        if "corrective" in wanted:
            runs["corrective"] = (interactive, starts, False)
        if "scratch" in wanted:
            runs["scratch"] = (interactive, [None] * len(structures), True)
        agnostic = args.agnostic_heart if key == "heart" else args.agnostic_hippocampus
        if "agnostic" in wanted and agnostic is not None:
            runs["agnostic (never saw it)"] = (PromptNet(ckpt.load(agnostic)), [None] * len(structures), True)
        if "walker" in wanted:
            runs["random walker"] = (open_segmenter("random-walker"), [None] * len(structures), True)
        for name, (segmenter, begin, box) in runs.items():
            times: list[float] = []
            started = time.perf_counter()
            results = [run_clicks(segmenter, s, b, times, box) for s, b in zip(structures, begin, strict=True)]
            row = summarise(f"{key} {name}", results)
            row["median_s"] = round(float(np.median(times)), 3)
            row["p95_s"] = round(float(np.percentile(times, 95)), 3)
            row["wall_s"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            latency[row["row"]] = (row["median_s"], row["p95_s"])
            print(json.dumps(row), flush=True)
        rows.append(
            {
                "row": f"{key} brush",
                "objects": len(structures),
                "voxels_to_edit": int(np.mean(brush)),
                "start": round(
                    float(np.mean([sim.dice(p, s.mask) for p, s in zip(starts, structures, strict=True)])), 4
                ),
            }
        )
    curve = []
    if args.learning and args.agnostic_heart is not None:
        curve = learning_curve(args.data, args.agnostic_heart, args.learning_minutes, [])
    columns = [
        "start",
        "dice@1",
        "dice@3",
        "dice@5",
        "dice@10",
        "noc@85",
        "noc@90",
        "box",
        "box+3",
        "median_s",
        "p95_s",
    ]
    print(f"\n{'row':34s} {'n':>3s} " + " ".join(f"{c:>8s}" for c in columns))
    for row in rows:
        cells = " ".join(f"{row.get(c, ''):>8}" for c in columns)
        extra = f"  brush: {row['voxels_to_edit']:,} voxels per object" if "voxels_to_edit" in row else ""
        print(f"{row['row']:34s} {row['objects']:>3d} {cells}{extra}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(
        json.dumps(
            {
                "rows": rows,
                "learning": curve,
                "load_before": round(load, 2),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "argv": sys.argv[1:],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
