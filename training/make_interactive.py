"""Train, card and install the promptable models of the zoo (clicks, boxes, scribbles -> a 3D mask).

    python training/make_interactive.py msd-heart-interactive [--minutes 12] [--data ../shared/data]
    python training/make_interactive.py msd-hippocampus-interactive
    python training/make_interactive.py volseg-interactive                       # class-agnostic, every structure
    python training/make_interactive.py volseg-interactive --leave-out heart --install-dir OUT   # for the bench

Every model holds out the cases its task model (``msd-heart``, ``msd-hippocampus``) never trained on (read from
that checkpoint, so the corrective bench row is honest for both). It trains on simulated interactions
(:mod:`napari_volseg.interactive.data`) for ``--minutes``, checks itself with the simulated annotator on the held-out
structures (Dice after 3 clicks, in the card), stores float16 weights and installs into the zoo. The class-agnostic
model trains on the heart, both hippocampus classes and the synthetic organs, with random parts of them;
``--leave-out heart|hippocampus`` drops one task from its training (the bench's "never saw" rows).
Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_volseg import __version__
from napari_volseg import events as ev
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.interactive.data import structures_of_task, synthetic_structures
from napari_volseg.interactive.net import PromptNet, Settings
from napari_volseg.interactive.train import InteractiveTrainer, evaluate
from napari_volseg.io import decathlon
from napari_volseg.zoo.card import MSD_ATTRIBUTION, MSD_LICENCE, HeldOut, ModelCard, write_card
from napari_volseg.zoo.registry import PRETRAINED_DIR

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"heart": ("Task02_Heart", "msd-heart"), "hippocampus": ("Task04_Hippocampus", "msd-hippocampus")}
MODELS = {
    "msd-heart-interactive": {
        "tasks": ["heart"],
        "settings": Settings(min_extent_mm=105.0, max_extent_mm=200.0),
        "modality": "MRI",
        "minutes": 15.0,
        "init": "msd-heart",
    },
    "msd-hippocampus-interactive": {
        "tasks": ["hippocampus"],
        "settings": Settings(min_extent_mm=48.0),
        "modality": "MRI",
        "minutes": 9.0,
        "init": "msd-hippocampus",
    },
    "volseg-interactive": {
        "tasks": ["heart", "hippocampus"],
        "settings": Settings(min_extent_mm=64.0, max_extent_mm=200.0, extent_jitter=(0.5, 1.8)),
        "modality": "any (z-scored per region)",
        "minutes": 12.0,
        "agnostic": True,
    },
}
HELD_OUT_PER_TASK = 8
"""Held-out structures the training's own check scores per task (the bench scores every held-out case)."""


def split_of(data: Path, key: str) -> tuple[decathlon.Task, list[str], list[str]]:
    """The task and its (train, held-out) case ids: the held-out cases are those its shipped model never saw."""
    folder, model = TASKS[key]
    task = decathlon.load_task(data / folder)
    seen = set(ckpt.load(PRETRAINED_DIR / f"{model}.safetensors").train_cases)
    labelled = [c.id for c in task.cases if c.label_path is not None and not c.sparse]
    return task, [c for c in labelled if c in seen], [c for c in labelled if c not in seen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--leave-out", choices=sorted(TASKS), default=None)
    parser.add_argument("--install-dir", type=Path, default=PRETRAINED_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=None, help="card and install this trained file instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    spec = MODELS[args.name]
    minutes = args.minutes if args.minutes is not None else spec["minutes"]
    agnostic = bool(spec.get("agnostic"))
    structures, held, held_ids, names = [], [], [], []
    for key in spec["tasks"]:
        if key == args.leave_out:
            continue
        task, train_ids, test_ids = split_of(args.data, key)
        structures += structures_of_task(task, train_ids)
        held += structures_of_task(task, test_ids[:HELD_OUT_PER_TASK])
        held_ids += test_ids
        names.append(f"{task.name} ({len(train_ids)} cases)")
    if agnostic:
        structures += synthetic_structures(6, seed=args.seed)
        names.append("synthetic CT / MRI phantoms (12)")
    settings = spec["settings"]
    settings = Settings(**{**settings.to_dict(), "trained_on": sorted({s.name for s in structures})})
    print(f"{args.name}: {len(structures)} training structures, {len(held)} held out, {minutes:g} min", flush=True)
    name = args.name if args.leave_out is None else f"{args.name}-without-{args.leave_out}"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.safetensors"
        start = time.perf_counter()
        if args.checkpoint is not None:
            raw = args.checkpoint
        else:
            trainer = InteractiveTrainer(
                structures,
                held,
                raw,
                minutes=minutes,
                settings=settings,
                parts=agnostic,
                warm=ckpt.load(PRETRAINED_DIR / f"{spec['init']}.safetensors") if spec.get("init") else None,
                started_from=spec.get("init", ""),
                batch=2,
                seed=args.seed,
                name=name,
            )
            for event in trainer.run():
                if isinstance(event, ev.Step) and event.step % 20 == 0:
                    print(f"  {event.seconds:>5.0f} s  step {event.step}, loss {event.loss:.3f}", flush=True)
        trained = ckpt.load(raw)
        figures = dict(trained.interactive["held_out"])
        curves = evaluate(PromptNet(trained), held)
        held_out = tuple(
            HeldOut(case=f"{s.case_id} {s.name.split('/')[-1]}", dice=round(c[-1], 4))
            for s, c in zip(held, curves, strict=True)
        )
        figures.update(
            cases=len(curves),
            dice_1_click=round(float(np.mean([c[0] for c in curves])), 4),
            dice_3_clicks=round(float(np.mean([c[-1] for c in curves])), 4),
        )
        card = ModelCard(
            name=name,
            description=(
                "class-agnostic promptable 3D U-Net: click, box or scribble any structure"
                if agnostic
                else f"promptable 3D U-Net for {', '.join(spec['tasks'])}: clicks, boxes, scribbles"
            ),
            task="interactive segmentation (held-out Dice after 3 simulated clicks)",
            classes={0: "background", 1: "object"},
            modality=spec["modality"],
            expected_spacing_mm=None,
            training_data="; ".join(names) + " of the Medical Segmentation Decathlon in ../shared/data",
            licence=MSD_LICENCE,
            attribution=MSD_ATTRIBUTION,
            command="python " + " ".join(shlex.quote(a) for a in ["training/make_interactive.py", *sys.argv[1:]]),
            held_out=held_out,
            training=(
                f"simulated interactions, {figures.get('minutes', minutes):g} min on 2 CPU cores, {figures['steps']} steps; "
                f"held out: {', '.join(held_ids)}; Dice after 1 / 3 simulated clicks on {figures['cases']} "
                f"held-out structures: {figures['dice_1_click']} / {figures['dice_3_clicks']}"
            ),
            weights="float16",
        )
        out = write_card(raw, args.install_dir / f"{name}.safetensors", card, dtype=torch.float16)
        seconds = time.perf_counter() - start
    print(f"{'model':32s} {'structures':>10s} {'steps':>6s} {'Dice@1':>7s} {'Dice@3':>7s}")
    print(
        f"{name:32s} {len(structures):>10d} {figures['steps']:>6d} {figures['dice_1_click']!s:>7s} "
        f"{figures['dice_3_clicks']!s:>7s}"
    )
    print(
        json.dumps(
            {
                "model": name,
                "path": str(out),
                "minutes": minutes,
                "seconds": round(seconds, 1),
                "version": __version__,
                **figures,
                "held_out_cases": held_ids,
                "mean": float(np.nan_to_num(figures["dice_3_clicks"] or 0)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
