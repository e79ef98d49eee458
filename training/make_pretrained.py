"""Train, score and install a pretrained model that ships with napari-volseg (msd-heart, msd-hippocampus).

    python training/make_pretrained.py msd-heart [--minutes 60] [--data ../shared/data] [--preset fast-cpu]
    python training/make_pretrained.py msd-heart --checkpoint OUT/heart-split0-20.safetensors

1. Holds out a fixed set of labelled cases: the seeded split (seed 0) of 3 heart / 20 hippocampus
   cases, named in the card, never trained or selected on.
2. Trains ``--preset`` on all the other cases for ``--minutes`` with no validation (the final
   weights ship; nothing is selected on the held-out cases). ``--checkpoint CKPT`` skips this and
   cards a checkpoint trained already: split 0 of ``bench/accuracy.py`` is this split (checked: the
   checkpoint's own settings must hold out the same cases); the card names the bench command that
   trained it (stamped in the checkpoint) and its budget.
3. Stores the weights as float16 (``--dtype float32`` to keep them), drops the optimizer state, and
   writes the model card (task, classes, modality, spacing, data and licence, this exact command)
   into the checkpoint's metadata.
   A cascade trained before its locator's ``one_piece`` was decided gets it from its training labels
   (:func:`decide_one_piece`); the inference settings are ``--preset``'s as it is now (:func:`current_inference`).
4. Predicts every held-out case from its NIfTI file with the file as shipped and writes each case's
   Dice into the card; the same Dice of the float32 weights is printed beside it.
5. Installs the file as ``napari_volseg/zoo/pretrained/<name>.safetensors`` (``--install-dir``).

Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_volseg import __version__, metrics
from napari_volseg import events as ev
from napari_volseg.config import DEFAULT_PRESET, load_preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.trainer import Trainer
from napari_volseg.io import decathlon
from napari_volseg.zoo.card import MSD_ATTRIBUTION, MSD_LICENCE, HeldOut, ModelCard, trained_by, write_card
from napari_volseg.zoo.registry import PRETRAINED_DIR

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "msd-heart": {
        "folder": "Task02_Heart",
        "held_out": 3,
        "task": "left atrium segmentation (MSD Task02_Heart)",
        "modality": "MRI",
        "data": "Medical Segmentation Decathlon Task02_Heart (King's College London): {n} training cases of the "
        "15 in ../shared/data (in-plane cropped to 256 x 256, intensities shifted by the volume minimum)",
    },
    "msd-hippocampus": {
        "folder": "Task04_Hippocampus",
        "held_out": 20,
        "task": "hippocampus segmentation (MSD Task04_Hippocampus)",
        "modality": "MRI (T1-weighted)",
        "data": "Medical Segmentation Decathlon Task04_Hippocampus (Vanderbilt University Medical Center): {n} "
        "training cases of the 200 in ../shared/data",
    },
}


def train(task, preset, out: Path, cache: Path) -> tuple[int, float]:
    steps, seconds = 0, 0.0
    for event in Trainer(task, preset, out, cache_root=cache).run():
        if isinstance(event, ev.Started):
            stage = event.stage or "main"
            print(f"  training ({stage}): {len(event.train_cases)} cases, batches of {event.batch_size}", flush=True)
        elif isinstance(event, ev.Step) and event.step % 100 == 0:
            print(f"  step {event.step:5d}  {event.seconds / 60:5.1f} min  loss {event.loss:.4f}", flush=True)
        elif isinstance(event, ev.Failed):
            raise SystemExit(f"training failed: {event.message}")
        elif isinstance(event, ev.Finished):
            steps, seconds = event.step, event.seconds
    return steps, seconds


def budget_of(checkpoint: ckpt.Checkpoint) -> str:
    """The whole run's budget from a checkpoint's preset (a cascade's main net holds its share of the minutes)."""
    t, plan = checkpoint.preset.train, checkpoint.preset.plan
    if t.minutes is None:
        return f"{t.epochs * t.iterations_per_epoch} steps"
    share = 1.0 - plan.locator_fraction if checkpoint.locator is not None else 1.0
    return f"{t.minutes / share:.4g} min"


def carded_checkpoint(path: Path, task, split) -> ckpt.Checkpoint:
    """A checkpoint given to ``--checkpoint``, checked to hold out exactly this script's cases."""
    checkpoint = ckpt.load(path)
    own = decathlon.training_split(task, checkpoint.preset.train)
    if [c.id for c in own.test] != [c.id for c in split.test]:
        raise SystemExit(
            f"{path.name} held out {[c.id for c in own.test] or 'nothing'}, not this model's held-out cases "
            f"{[c.id for c in split.test]}: train it as split 0 of bench/accuracy.py (seed 0, test_cases "
            f"{len(split.test)})"
        )
    return checkpoint


def decide_one_piece(path: Path, task, split, work: Path) -> Path:
    """A cascade trained before its locator's ``one_piece`` was decided (its metadata has no such key) gets it from
    its fully labelled training cases, as a cascade run decides it now: a copy in ``work`` with the key; any other
    checkpoint is returned as it is."""
    from napari_volseg import postprocess as post

    meta, tensors = ckpt.read_tensors(path)
    if "locator" not in meta or "one_piece" in json.loads(meta["locator"]):
        return path
    decided = post.one_piece_of_cases(split.train)
    if decided is None:
        return path
    locator = {**json.loads(meta["locator"]), "one_piece": decided}
    print(f"{path.name}: locator one_piece {decided} from the training labels", flush=True)
    return ckpt.write_atomic(
        work / f"{path.stem}.one-piece.safetensors", tensors, {**meta, "locator": json.dumps(locator)}
    )


def current_inference(path: Path, preset, work: Path) -> Path:
    """Inference settings are not trained: a model carded after its preset's ``infer:`` changed ships with the
    settings as the preset holds them now (fast-cpu's sliding-window overlap went from 0.25 to nnU-Net's 0.5 after
    msd-heart trained). A copy in ``work``; a checkpoint of another preset, or one already so, is returned as it is."""
    meta, tensors = ckpt.read_tensors(path)
    stored = json.loads(meta.get("preset", "{}"))
    now = preset.to_dict()["infer"]
    if stored.get("name") != preset.name or stored.get("infer") == now:
        return path
    print(f"{path.name}: inference settings {stored.get('infer')} -> {now} ({preset.name} as it is now)", flush=True)
    return ckpt.write_atomic(
        work / f"{path.stem}.infer.safetensors", tensors, {**meta, "preset": json.dumps({**stored, "infer": now})}
    )


def score(model: Path, task: decathlon.Task, cases) -> list[HeldOut]:
    predictor = Predictor(model)
    rows = []
    for case in cases:
        image, truth = case.load()
        scores = metrics.score_case(predictor.predict(image).labels, truth.data, task.num_classes, truth.spacing)
        per_class = {task.labels.get(s.label, str(s.label)): round(s.dice, 4) for s in scores}
        rows.append(HeldOut(case=case.id, dice=round(metrics.mean_dice(scores), 4), per_class=per_class))
    predictor.release()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of MSD tasks")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget (wall clock)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored weights")
    parser.add_argument("--install-dir", type=Path, default=PRETRAINED_DIR)
    parser.add_argument("--work", type=Path, default=None, help="keep the training checkpoints here")
    parser.add_argument("--provisional", action="store_true", help="mark the card as a test training, not for use")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="card and install this trained checkpoint instead of training"
    )
    args = parser.parse_args(argv)
    spec = MODELS[args.name]
    command = "python training/make_pretrained.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    task = decathlon.load_task(args.data / spec["folder"])
    # the seeded split (seed 0) holds out the cases the card scores; no validation: the final weights ship
    preset = load_preset(args.preset).with_overrides(
        minutes=args.minutes, seed=0, val_cases=0, test_cases=spec["held_out"]
    )
    split = decathlon.training_split(task, preset.train)
    work = args.work or Path(tempfile.mkdtemp(prefix=f"volseg-{args.name}-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.checkpoint is not None:
        trained = args.checkpoint
        trained_ckpt = carded_checkpoint(trained, task, split)
        preset = trained_ckpt.preset
        budget = budget_of(trained_ckpt)
        n_train = len(decathlon.training_split(task, preset.train).train)
        history = trained_ckpt.history[-1] if trained_ckpt.history else {}
        steps, seconds = trained_ckpt.step, float(history.get("seconds", 0.0))
        made_by = trained_by(trained) or f"not recorded in {trained.name}"
        print(f"{args.name}: carding {trained} ({budget}, {n_train} training cases)", flush=True)
    else:
        trained = work / f"{args.name}.trained.safetensors"
        budget, n_train, made_by = f"{args.minutes:g} min", len(split.train), ""
        print(
            f"{args.name}: training {preset.name} for {args.minutes} min on {n_train} cases of {task.name}; "
            f"held out: {', '.join(c.id for c in split.test)}",
            flush=True,
        )
        steps, seconds = train(task, preset, trained, work / "cache")
        trained_ckpt = ckpt.load(trained)
    trained = decide_one_piece(trained, task, split, work)
    trained = current_inference(trained, load_preset(args.preset), work)
    validated = preset.train.val_cases
    selection = f"checkpoint selected on {validated} validation cases" if validated else "no validation (final weights)"
    threads = f"{preset.train.threads} CPU threads" if preset.train.threads else "every CPU core"
    plan = trained_ckpt.plan
    spacing = tuple(round(float(s), 3) for s in plan.target_spacing) if plan.target_spacing else None
    description = (
        f"cpu-lean 3D U-Net ({preset.name} preset"
        + (
            ", coarse-to-fine cascade: a locator net finds the organ, the main net segments it"
            if trained_ckpt.locator is not None
            else ""
        )
        + f") trained on {n_train} {task.name} cases for {budget}"
    )
    if args.provisional:
        description = f"PROVISIONAL test training ({budget}), not for use: {description}"
    card = ModelCard(
        name=args.name,
        description=description,
        task=spec["task"],
        classes=dict(task.labels),
        modality=spec["modality"],
        expected_spacing_mm=spacing,
        training_data=spec["data"].format(n=n_train),
        licence=MSD_LICENCE,
        attribution=MSD_ATTRIBUTION,
        command=command,
        training=f"{steps} steps in {seconds / 60:.1f} min on {threads}; "
        f"napari-volseg {trained_ckpt.version or __version__}; {selection}; "
        f"started from {trained_ckpt.started_from or 'scratch'}",
        weights=args.dtype,
        trained_by=made_by,
    )
    dtype = torch.float16 if args.dtype == "float16" else None
    candidate = write_card(trained, work / f"{args.name}.safetensors", card, dtype=dtype)
    held = score(candidate, task, split.test)
    reference = score(trained, task, split.test) if dtype is not None else held
    card = dataclasses.replace(card, held_out=tuple(held))
    args.install_dir.mkdir(parents=True, exist_ok=True)
    final = write_card(candidate, args.install_dir / f"{args.name}.safetensors", card)

    print(f"\n{'case':<20}{'Dice (' + args.dtype + ')':>16}{'Dice (float32)':>16}")
    for h, r in zip(held, reference, strict=True):
        print(f"{h.case:<20}{h.dice:>16.4f}{r.dice:>16.4f}")
    mean_ref = sum(r.dice for r in reference) / len(reference)
    print(f"{'MEAN':<20}{card.mean_dice:>16.4f}{mean_ref:>16.4f}")
    print(f"installed {final} ({final.stat().st_size / 1e6:.1f} MB; as float32: {trained.stat().st_size / 1e6:.1f} MB)")
    summary = {
        "model": args.name,
        "steps": steps,
        "train_min": round(seconds / 60, 2),
        "total_min": round((time.perf_counter() - t0) / 60, 2),
        "mean_dice": round(card.mean_dice, 4),
        "mean_dice_float32": round(mean_ref, 4),
        "dice_per_case": {h.case: h.dice for h in held},
        "bytes": final.stat().st_size,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
