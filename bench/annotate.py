"""Annotation on the real MSD cases in ../shared/data: sparse slices, and a simulated annotator loop.

sparse: Task02_Heart (12 training / 3 held-out cases, the accuracy bench's split) trained for the
        same budget with dense labels and with only every k-th axial slice labelled (the rest
        declared unlabelled); held-out Dice of each against the dense one.
loop:   start from a model trained on 3 cases; each round rank the unlabelled pool (or draw at
        random), predict the chosen case, "correct" it (the simulated annotator replaces the
        prediction by the truth; the bench counts the voxels changed), accept it into the task and
        fine-tune; Dice on fixed held-out cases after each round, for the uncertainty order and a
        random order; and a reference model trained from scratch on every pool case's label for
        the same total training time.
Tasks are built with the project's own new-task, accept and fine-tune code. Prints a table and ends
with one JSON line.

    python bench/annotate.py [--sparse-minutes 5] [--ks 4,8,16] [--loop-task hippo] [--start-minutes 2]
                             [--rounds 5] [--finetune-minutes 1.5] [--pool 37] [--held-out 20] [--parts sparse,loop]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_volseg import events as ev
from napari_volseg import metrics
from napari_volseg.annotate.accept import accept
from napari_volseg.annotate.edits import edit_stats
from napari_volseg.annotate.finetune import finetuner
from napari_volseg.annotate.sparse import keep_slices
from napari_volseg.annotate.uncertainty import rank_cases
from napari_volseg.config import DEFAULT_PRESET, FinetuneConfig, load_preset
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.trainer import Trainer
from napari_volseg.io import decathlon, nifti
from napari_volseg.io.new_task import write_task_from_files

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = {"heart": "Task02_Heart", "hippo": "Task04_Hippocampus"}
PRESET = DEFAULT_PRESET


def build_task(folder: Path, source: decathlon.Task, labelled: dict, unlabelled: list) -> decathlon.Task:
    """A task of ``labelled`` (case -> label array or None for its own file) and ``unlabelled`` cases,
    made by new-task from folders of links (and of the sparse label files written here)."""
    images, labels = folder.parent / f"{folder.name}-images", folder.parent / f"{folder.name}-labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for case in list(labelled) + unlabelled:
        (images / case.image_path.name).symlink_to(case.image_path)
    for case, array in labelled.items():
        if array is None:
            (labels / case.label_path.name).symlink_to(case.label_path)
        else:
            nifti.save_labels(array, case.geometry(), labels / case.label_path.name)
    classes = ",".join(source.labels[k] for k in sorted(source.labels))
    modality = "CT" if source.kind == "ct" else "MRI"
    write_task_from_files(images, folder, name=folder.name, modality=modality, classes=classes, labels=labels)
    return decathlon.load_task(folder)


def run(trainer: Trainer, tag: str) -> tuple[Path, int]:
    """Drive a trainer to its end; the checkpoint it leaves and the steps it took."""
    steps = 0
    for event in trainer.run():
        if isinstance(event, ev.Step):
            steps = event.step
        elif isinstance(event, ev.Failed):
            raise SystemExit(f"{tag}: {event.message}")
        elif isinstance(event, ev.Finished):
            print(f"  [{tag}] {steps} steps in {event.seconds / 60:.1f} min", flush=True)
            return event.model, steps
    raise SystemExit(f"{tag}: training ended without finishing")


def held_out_dice(checkpoint: Path, cases: list[decathlon.Case], num_classes: int) -> float:
    predictor = Predictor(checkpoint)
    scores = []
    for case in cases:
        image, truth = case.load()
        pred = predictor.predict(image).labels
        scores.append(
            metrics.mean_dice(metrics.score_case(pred, truth.data, num_classes, truth.spacing, with_hd95=False))
        )
    return round(float(np.mean(scores)), 4)


def sparse_part(out: Path, minutes: float, ks: list[int], threads: int | None) -> list[dict]:
    source = decathlon.load_task(SHARED / TASKS["heart"])
    preset = load_preset(PRESET).with_overrides(minutes=minutes, threads=threads, val_cases=3)
    split = decathlon.training_split(source, preset.train)
    rows = []
    for k in [1] + ks:
        labelled = {c: None for c in split.val}  # validation stays dense
        annotated = []
        for case in split.train:
            label = case.load_label().data if k > 1 else None
            labelled[case] = keep_slices(label, k) if k > 1 else None
            annotated.append(1.0 if k == 1 else float((labelled[case] != 255).any(axis=(1, 2)).mean()))
        task = build_task(out / f"heart-every-{k}", source, labelled, [])
        val = [task.case(c.id) for c in split.val]
        same = decathlon.Split(train=[task.case(c.id) for c in split.train], val=val)  # the source's split
        tag = "dense" if k == 1 else f"every {k}th slice"
        best, steps = run(Trainer(task, preset, task.root / "model.safetensors", split=same), tag)
        dice = held_out_dice(best, val, source.num_classes)
        rows.append(
            {
                "labels": tag,
                "k": k,
                "slices_annotated": round(float(np.mean(annotated)), 3),
                "steps": steps,
                "dice": dice,
            }
        )
        print(f"  [{tag}] held-out Dice {dice}", flush=True)
    dense = rows[0]["dice"]
    for row in rows:
        row["vs_dense"] = round(row["dice"] - dense, 4)
    return rows


def loop_part(out: Path, key: str, args) -> dict:
    source = decathlon.load_task(SHARED / TASKS[key])
    order = sorted(source.cases, key=lambda c: c.id)
    random.Random(args.seed).shuffle(order)
    held, start, pool = order[: args.held_out], order[args.held_out : args.held_out + 3], order[args.held_out + 3 :]
    pool = pool[: args.pool]
    truth = {c.id: c for c in pool}
    # no validation: the last weights (averaged over the last saves)
    preset = load_preset(PRESET).with_overrides(threads=args.threads, val_cases=0)
    base = build_task(out / f"{key}-start", source, {c: None for c in start}, [])
    v0, _ = run(
        Trainer(base, preset.with_overrides(minutes=args.start_minutes), base.root / "v000.safetensors"), "3 cases"
    )
    dice0 = held_out_dice(v0, held, source.num_classes)
    result = {"task": source.name, "held_out": len(held), "pool": len(pool), "start_dice": dice0, "orders": {}}
    for how in ("uncertainty", "random"):
        task = build_task(out / f"{key}-{how}", source, {c: None for c in start}, pool)
        rng = random.Random(args.seed)
        model, rounds = v0, []
        for r in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            if how == "uncertainty":
                ranking = [item for item in rank_cases(Predictor(model), task.test_cases) if isinstance(item, list)][0]
                case_id = ranking[0].case_id
            else:
                case_id = rng.choice([c.id for c in task.test_cases])
            pick_s = time.perf_counter() - t0
            suggestion = Predictor(model).predict(task.case(case_id).load_image()).labels
            correct = truth[case_id].load_label().data
            stats = edit_stats(suggestion, correct)
            accept(task, case_id, correct)
            task = decathlon.load_task(task.root)
            config = FinetuneConfig(minutes=args.finetune_minutes)
            model, steps = run(
                finetuner(model, task, task.root / f"v{r:03d}.safetensors", config, threads=args.threads),
                f"{how} round {r}",
            )
            dice = held_out_dice(model, held, source.num_classes)
            rounds.append(
                {
                    "round": r,
                    "case": case_id,
                    "voxels_edited": stats.voxels,
                    "share_edited": round(stats.share, 3),
                    "steps": steps,
                    "dice": dice,
                    "pick_s": round(pick_s, 1),
                }
            )
            print(f"  [{how} round {r}] {case_id}: {stats.summary()}; held-out Dice {dice}", flush=True)
        result["orders"][how] = rounds
    total = args.start_minutes + args.rounds * args.finetune_minutes
    everything = build_task(out / f"{key}-all", source, {c: None for c in start + pool}, [])
    reference, _ = run(
        Trainer(everything, preset.with_overrides(minutes=total), everything.root / "all.safetensors"),
        f"all {len(everything.cases)} cases",
    )
    result["reference"] = {
        "cases": len(everything.cases),
        "minutes": total,
        "dice": held_out_dice(reference, held, source.num_classes),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="sparse,loop")
    parser.add_argument("--sparse-minutes", type=float, default=5.0, help="training budget of each sparse/dense run")
    parser.add_argument("--ks", default="4,8,16", help="label every k-th axial slice")
    parser.add_argument("--loop-task", choices=sorted(TASKS), default="hippo")
    parser.add_argument("--start-minutes", type=float, default=2.0, help="the 3-case starting model's budget")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--finetune-minutes", type=float, default=1.5)
    parser.add_argument("--pool", type=int, default=37, help="unlabelled cases to choose from")
    parser.add_argument("--held-out", type=int, default=20, help="fixed held-out cases scored after each round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (SHARED / TASKS["heart"]).is_dir():
        print(f"no real data at {SHARED}; nothing to measure", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="volseg-annotate-bench-"))
    t0 = time.perf_counter()
    summary: dict = {"bench": "annotate", "preset": PRESET}
    parts = args.parts.split(",")
    if "sparse" in parts:
        rows = sparse_part(out, args.sparse_minutes, [int(k) for k in args.ks.split(",")], args.threads)
        print(f"\nsparse labels, {TASKS['heart']}, {args.sparse_minutes:g} min each")
        print(f"{'labels':<20}{'slices annotated':>18}{'steps':>8}{'held-out Dice':>15}{'vs dense':>10}")
        for row in rows:
            print(
                f"{row['labels']:<20}{row['slices_annotated']:>18}{row['steps']:>8}{row['dice']:>15}{row['vs_dense']:>10}"
            )
        summary["sparse"] = {"minutes": args.sparse_minutes, "rows": rows}
    if "loop" in parts:
        loop = loop_part(out, args.loop_task, args)
        print(
            f"\nannotator loop, {loop['task']}: start from 3 cases (held-out Dice {loop['start_dice']}), "
            f"{args.finetune_minutes:g} min fine-tune per round, {loop['held_out']} held-out cases"
        )
        print(f"{'round':<7}" + "".join(f"{how + ' voxels':>22}{how + ' Dice':>18}" for how in loop["orders"]))
        for i in range(args.rounds):
            cells = [(o[i]["voxels_edited"], o[i]["dice"]) for o in loop["orders"].values()]
            print(f"{i + 1:<7}" + "".join(f"{v:>22,}{d:>18}" for v, d in cells))
        ref = loop["reference"]
        print(f"reference: all {ref['cases']} labelled cases, {ref['minutes']:g} min from scratch: Dice {ref['dice']}")
        summary["loop"] = loop
    summary["total_min"] = round((time.perf_counter() - t0) / 60, 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
