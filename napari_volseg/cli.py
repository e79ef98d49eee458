"""The ``volseg`` command line: the same core as the napari widgets, with no window.

Every failure the user can act on is one line on stderr and exit status 1; a bad command line
is argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from napari_volseg import __version__, paths
from napari_volseg.errors import VolsegError
from napari_volseg.io.volumes import OUT_FORMATS
from napari_volseg.outputs import check_writable

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


@command("synth")
def _synth(args: argparse.Namespace) -> int:
    from napari_volseg.io import synthetic

    folder = synthetic.write_task(
        args.out, cases=args.cases, kind=args.kind, seed=args.seed, test_cases=args.test_cases
    )
    print(f"wrote {args.cases} synthetic {args.kind.upper()} case(s) to {folder}")
    return 0


def _follow_download(events, desc: str) -> Path:
    """Show a download's events as a tqdm byte bar; the path it ends with."""
    from napari_volseg.engine.events import Downloaded

    bar = _progress_bar(desc, unit="B", unit_scale=True)
    try:
        for event in events:
            if isinstance(event, Downloaded):
                return event.path
            bar.total, bar.n = event.total, event.done
            bar.refresh()
    finally:
        bar.close()
    raise VolsegError(f"{desc}: the download ended without a result")


@command("download")
def _download(args: argparse.Namespace) -> int:
    from napari_volseg.io import download

    folder = _follow_download(
        download.download_task(args.task, args.out, base_url=args.base_url, md5=args.md5), args.task
    )
    print(f"{args.task} is ready in {folder}")
    return 0


def _progress_bar(desc: str, total: int | None = None, unit: str = "it", unit_scale: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, disable=None, leave=False)


@command("train")
def _train(args: argparse.Namespace) -> int:
    from napari_volseg.engine.config import load_preset
    from napari_volseg.engine.train import Trainer
    from napari_volseg.io.decathlon import load_task
    from napari_volseg.zoo.warm import start_from

    if args.interactive:
        from napari_volseg.interactive.train import task_trainer

        trainer = task_trainer(
            load_task(args.data),
            args.out,
            minutes=args.minutes or 5.0,
            start_from=args.start_from,
            val_cases=args.val_cases,
        )
        return _run_trainer(trainer, "a promptable model (clicks, boxes, scribbles)")
    preset = load_preset(args.preset).with_overrides(
        minutes=args.minutes, epochs=args.epochs, device=args.device, val_cases=args.val_cases
    )
    task = load_task(args.data)
    warm, name = (None, "") if args.resume else start_from(args.start_from, task, preset)
    if name:
        print(f"starting from {name} (--start-from scratch to train from scratch)", file=sys.stderr)
    trainer = Trainer(task, preset, args.out, resume=args.resume, warm_from=warm, warm_name=name)
    return _run_trainer(trainer, preset.name)


def _run_trainer(trainer, what_name: str) -> int:
    """Drive a trainer's events: a progress bar, validation lines, one line at the end."""
    from napari_volseg.engine import events as ev

    if not trainer.dist.main:  # under torchrun, rank 0 alone reports
        for event in trainer.run():
            if isinstance(event, ev.Failed):
                raise VolsegError(f"rank {trainer.dist.rank}: {event.message}")
        return 0
    with _signals_stop(trainer) as caught:
        finished = _report_events(trainer, what_name)
    if caught and (finished is None or (finished.best_path is None and finished.last_path is None)):
        return 130  # interrupted before a model existed
    return 0


@contextlib.contextmanager
def _signals_stop(trainer):
    """Ctrl-C (SIGINT) or SIGTERM is Stop: the run ends after this step and its model stays at ``--out``; a second
    Ctrl-C interrupts at once (exit 130)."""
    if threading.current_thread() is not threading.main_thread():  # signals can only be caught there
        yield []
        return

    def stop(signum, _frame):
        if trainer.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop()
        print(
            f"\nvolseg: {signal.Signals(signum).name}: stopping after this step; the model stays at {trainer.out} "
            "(Ctrl-C again to abort)",
            file=sys.stderr,
        )

    caught: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: (caught.append(signum), stop(signum, frame)))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _report_events(trainer, what_name: str):
    """Print the run's events; its :class:`Finished` (None if it ended otherwise)."""
    from napari_volseg.engine import events as ev

    task = trainer.task
    bar = None
    for event in trainer.run():
        if isinstance(event, ev.Progress):
            print(f"preprocessing {event.done}/{event.total} {event.item}", file=sys.stderr, end="\r")
        elif isinstance(event, ev.Started):
            if bar:  # a cascade: the locator stage ended, the main stage starts
                bar.close()
            total = event.total_steps
            what = "the cascade's coarse locator" if event.stage == "locator" else what_name
            print(
                f"training {what} on {task.name}: {len(event.train_cases)} train / "
                f"{len(event.val_cases)} validation cases, device {event.device}, batches of {event.batch_size} × "
                + "×".join(map(str, event.patch_size)),
                file=sys.stderr,
            )
            bar = _progress_bar(event.stage or "train", total=total, unit="step")
            bar.n = event.start_step
        elif isinstance(event, ev.Step):
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", refresh=False)
        elif isinstance(event, ev.Validated):
            from napari_volseg.engine.quality import judge

            text = " ".join(f"{k}={v:.3f}" for k, v in event.dice.items())
            stage = f"{event.stage} " if event.stage else ""
            (bar.write if bar else print)(
                f"{stage}epoch {event.epoch + 1} step {event.step}: mean Dice {event.mean:.4f} ({text}); "
                + judge(event.mean, event.volume_ratio).verdict
            )
        elif isinstance(event, ev.Failed):
            if bar:
                bar.close()
            raise VolsegError(event.message)
        elif isinstance(event, ev.Finished):
            if bar:
                bar.close()
            print(_finished_line(event))
            return event
    return None


def _finished_line(event) -> str:
    """How a training run ended and which weights its checkpoint holds (never a "nan" Dice: a run without
    validation, or stopped before its first, names its weights instead)."""
    how = "stopped" if event.stopped else "finished"
    head = f"{how} at step {event.step} after {event.seconds / 60:.1f} min"
    if event.best_path is None:
        last = f"; resumable weights in {event.last_path}" if event.last_path is not None else ""
        return f"{head}: no model yet{last}"
    if math.isfinite(event.best_dice):
        from napari_volseg.engine.quality import of_file

        verdict = of_file(event.best_path).verdict
        return f"{head}; best validation Dice {event.best_dice:.4f} ({verdict}); checkpoint {event.best_path}"
    averaged = (event.history[-1].get("averaged_steps") if event.history else None) or []
    which = (
        f"the mean of the weights at steps {', '.join(map(str, averaged))}"
        if len(averaged) > 1
        else f"the weights of step {event.step}"
    )
    return f"{head}; no validation ran, the model is {which}; checkpoint {event.best_path}"


@command("new-task")
def _new_task(args: argparse.Namespace) -> int:
    from napari_volseg.io.decathlon import load_task
    from napari_volseg.io.new_task import write_task_from_files

    folder = write_task_from_files(
        args.images, args.out, name=args.name, modality=args.modality, classes=args.classes, labels=args.labels
    )
    task = load_task(folder)
    sparse = sum(c.sparse for c in task.cases)
    print(
        f"wrote task {task.name} to {folder}: {len(task.cases)} labelled case(s)"
        + (f" ({sparse} sparse)" if sparse else "")
        + f", {len(task.test_cases)} to annotate in imagesTs/"
    )
    return 0


@command("finetune")
def _finetune(args: argparse.Namespace) -> int:
    from napari_volseg.annotate.finetune import finetuner
    from napari_volseg.engine.config import FinetuneConfig
    from napari_volseg.interactive.train import is_promptable
    from napari_volseg.io.decathlon import load_task

    config = FinetuneConfig(**({"minutes": args.minutes} if args.minutes is not None else {}))
    if is_promptable(args.model):
        from napari_volseg.interactive.train import finetuner as prompt_finetuner

        trainer = prompt_finetuner(args.model, load_task(args.data), args.out, minutes=config.minutes)
        return _run_trainer(trainer, f"fine-tuning {args.model.name}")
    trainer = finetuner(args.model, load_task(args.data), args.out, config, device=args.device)
    return _run_trainer(trainer, f"fine-tuning {args.model.name}")


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from napari_volseg.cohort.run import CohortSummary, predict_cohort

    # unset flags keep what the checkpoint's preset predicts with
    overrides = {"overlap": args.overlap, "tta": args.tta, "device": args.device}
    bar = None
    events = predict_cohort(
        args.model,
        args.inputs,
        args.out,
        workers=args.workers,
        part=args.part,
        parts=args.parts,
        out_format=args.out_format,
        series=args.series,
        **overrides,
    )
    summary = CohortSummary()
    for event in events:
        if isinstance(event, CohortSummary):
            summary = event
            continue
        if bar is None:
            bar = _progress_bar("predict", total=event.total, unit="scan")
            bar.update(event.done)
            if not event.item:
                continue
        else:
            bar.update(event.done - bar.n)
        if event.item.startswith("failed "):
            bar.write(f"volseg: {event.item[len('failed ') :]} failed (its reason is in the manifest)")
        elif not event.item.startswith("done "):
            bar.write(f"wrote {event.item}")
    if bar:
        bar.close()
    if summary.manifest is not None:
        print(
            f"{summary.done} predicted, {summary.skipped} already done by this model, {summary.failed} failed: "
            f"{summary.manifest}"
        )
        others = {k: v for k, v in summary.cohort.items() if k in ("failed", "pending")}
        mine = {"failed": summary.failed, "pending": 0}
        if any(others.get(k, 0) > mine[k] for k in others):  # other parts' rows: say them, the last part is not all
            said = ", ".join(f"{v} {k}" for k, v in sorted(summary.cohort.items()))
            print(f"the whole cohort in {summary.manifest.parent}: {said} (other parts' records included)")
    if summary.failed:
        first = summary.failures[0]
        print(
            f"volseg: error: {summary.failed} scan(s) failed, e.g. {Path(first.input).name}: {first.reason}",
            file=sys.stderr,
        )
        return 1
    return 0


@command("qc")
def _qc(args: argparse.Namespace) -> int:
    from napari_volseg.cohort.qc import write_report

    report, flagged = write_report(args.folder, thumbnails=not args.no_thumbnails)
    print(f"{len(flagged)} scan(s) flagged: {report}")
    return 0


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from napari_volseg.evaluate import evaluate_folder, unlabelled_predictions, write_csv

    if args.csv:
        check_writable(args.csv, what="CSV table")
    from napari_volseg.cohort.records import join_manifest

    rows, summary = evaluate_folder(args.pred, args.truth)
    if join_manifest(rows, args.pred, args.truth):
        print(f"joined {args.pred / 'manifest.csv'}: each case's model and confidence (expected edit share)")
    skipped = unlabelled_predictions(args.pred, args.truth)
    if skipped:  # scored in silence, "(1 cases)" read as if every prediction had been scored
        print(f"not scored, no label of the same name in {args.truth}: {', '.join(skipped)}")
    for row in rows:
        confidence = f"  confidence {row['confidence']}" if row.get("confidence") else ""
        star = " *" if row.get("trained_on") is True else ""
        print(
            f"{row['case'] + star:<24} class {row['label']} ({row['name']}): Dice {row['dice']:.4f}  "
            f"HD95 {row['hd95']:.2f} mm" + confidence
        )
    for label, values in summary.items():
        print(f"mean class {label}: Dice {values['dice']:.4f}  HD95 {values['hd95']:.2f} mm  ({values['cases']} cases)")
    if any(row.get("trained_on") is True for row in rows):  # the model's own training cases are no test of it
        for label in summary:
            seen = [r["dice"] for r in rows if r["label"] == label and r.get("trained_on") is True]
            unseen = [r["dice"] for r in rows if r["label"] == label and r.get("trained_on") is False]
            print(
                f"mean class {label} over the {len(unseen)} case(s) the model never trained on: "
                + (f"Dice {sum(unseen) / len(unseen):.4f}" if unseen else "none")
                + f"; over its {len(seen)} training case(s) (*): Dice {sum(seen) / len(seen):.4f}"
            )
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}")
    return 0


@command("preprocess")
def _preprocess(args: argparse.Namespace) -> int:
    from napari_volseg import planning
    from napari_volseg.cache import PreparedCache
    from napari_volseg.engine.config import load_preset
    from napari_volseg.io.decathlon import load_task

    preset = load_preset(args.preset)
    task = load_task(args.data)
    plan, cascade = planning.plan_task(task, preset)
    if cascade:
        print(
            f"{preset.name} trains {task.name} as a cascade: caching the locator's coarse grid "
            "(regions of interest are cut while training)",
            file=sys.stderr,
        )
    cache = PreparedCache(plan)
    bar = _progress_bar("preprocess", total=len(task.cases), unit="case")
    for _ in cache.fill(task.cases):
        bar.update(1)
    bar.close()
    print(f"plan {plan.hash}: {cache.misses} case(s) preprocessed, {cache.hits} already cached, in {cache.folder}")
    return 0


@command("models")
def _models(args: argparse.Namespace) -> int:
    from napari_volseg.models import MODEL_PRESETS, build_model, count_parameters
    from napari_volseg.models.registry import CLASSIFIER_PRESETS
    from napari_volseg.zoo.registry import list_models, promptable_models

    print("architectures (volseg train --preset ..., model:; volseg classify)")
    for name, (config, description) in {**MODEL_PRESETS, **CLASSIFIER_PRESETS}.items():
        print(f"  {name:<12} {count_parameters(build_model(config)):>12,} parameters  {description}")
    print("models (volseg predict --model NAME)")
    for entry in list_models(args.index, runs=False):
        where = entry.path if entry.path else f"volseg pull {entry.name}"
        print(f"  {entry.label:<32} {entry.about}  [{where}]")
    print("promptable models (volseg interact --model NAME; the Prompts tab), and random-walker (no model)")
    for entry in promptable_models(runs=False):
        print(f"  {entry.label:<32} {entry.about}  [{entry.path}]")
    return 0


@command("pull")
def _pull(args: argparse.Namespace) -> int:
    from napari_volseg.zoo.pull import pull

    path = _follow_download(pull(args.name, args.index), args.name)
    print(f"{args.name} is installed: {path}")
    return 0


@command("export")
def _export(args: argparse.Namespace) -> int:
    from napari_volseg.zoo.export import export

    for path in export(args.model, args.format, args.out):
        print(f"wrote {path}")
    return 0


@command("import")
def _import(args: argparse.Namespace) -> int:
    from napari_volseg.zoo.bundle_import import import_bundle

    path = import_bundle(args.monai_bundle, args.out)
    name = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name
    print(f"imported {args.monai_bundle} as {path}; predict with `volseg predict --model {name} ...`")
    return 0


@command("presets")
def _presets(args: argparse.Namespace) -> int:
    from napari_volseg.engine.config import list_presets

    for name, preset in list_presets().items():
        print(f"{name:<24} [{preset.model}] {preset.description}")
    return 0


@command("interact")
def _interact(args: argparse.Namespace) -> int:
    from napari_volseg.interactive.cli import interact

    return interact(args)


@command("classify")
def _classify(args: argparse.Namespace) -> int:
    from napari_volseg.classify.cli import run

    return run(args)


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from napari_volseg import demo

    if args.headless:
        summary = demo.run_headless(
            Path(args.out),
            data=args.data,
            kind=args.kind,
            minutes=args.minutes,
            log=lambda line: print(line, file=sys.stderr),
        )
        print(
            f"mean Dice {summary['mean_dice']} on {len(summary['cases'])} held-out case(s) after "
            f"{summary['train_minutes']} min of training; wrote {summary['screenshot']} and {summary['metrics']}"
        )
        return 0
    from napari_volseg._napari.demo import run_viewer

    return run_viewer(data=args.data, kind=args.kind)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="volseg", description="3D U-Net segmentation of MSD-format medical volumes.")
    parser.add_argument("--version", action="version", version=f"napari-volseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic MSD-format task (CT spleen or MRI left atrium phantom)")
    p.add_argument("--out", required=True, type=Path, help="task folder to write")
    p.add_argument("--cases", type=int, default=8, help="labelled cases (default 8)")
    p.add_argument("--kind", choices=("ct", "mri"), default="ct", help="phantom kind (default ct)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same volumes")
    p.add_argument("--test-cases", type=int, default=0, help="unlabelled cases in imagesTs/ (default 0)")

    p = sub.add_parser("download", help="download and extract an MSD task (checksummed, resumable)")
    p.add_argument("task", help="task name, e.g. Task09_Spleen or Task02_Heart")
    p.add_argument("--out", required=True, type=Path, help="folder that receives the task folder")
    p.add_argument("--base-url", default=paths.MSD_BASE_URL, help="mirror URL")
    p.add_argument("--md5", default=None, help="expected MD5 (known for the ten MSD tasks)")

    p = sub.add_parser("train", help="train a 3D U-Net on an MSD task folder")
    p.add_argument("--data", required=True, type=Path, help="MSD task folder (dataset.json, imagesTr/, labelsTr/)")
    p.add_argument(
        "--preset", default=paths.DEFAULT_PRESET, help="training preset name or YAML file (see `volseg presets`)"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="checkpoint to write (.safetensors); the resumable "
        "last checkpoint goes beside it as NAME.last.safetensors",
    )
    p.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None, help="device (default auto)")
    p.add_argument("--val-cases", type=int, default=None, help="cases held out for validation")
    p.add_argument("--resume", action="store_true", help="continue from NAME.last.safetensors")
    p.add_argument(
        "--start-from",
        default="auto",
        metavar="MODEL",
        help="warm start: a zoo model name or checkpoint to start from, 'scratch', or 'auto' (default: the closest "
        "model of the task's modality and channels, else scratch; a head for other classes starts fresh; with "
        "--interactive: volseg-interactive)",
    )
    p.add_argument(
        "--interactive",
        action="store_true",
        help="train a promptable model (clicks, boxes, scribbles; see `volseg interact`) on every labelled structure "
        "of the task, for --minutes (default 5)",
    )

    p = sub.add_parser(
        "new-task", help="make an MSD-layout task folder from your own scans (NIfTI, NRRD, MetaImage, DICOM) and labels"
    )
    p.add_argument(
        "--images",
        required=True,
        type=Path,
        help="folder of scans, one per case: NIfTI, NRRD or MetaImage files, or DICOM series (a subfolder each); "
        "all but NIfTI are converted to NIfTI in the task, their source recorded in dataset.json",
    )
    p.add_argument("--labels", type=Path, default=None, help="folder of label files named like their scans")
    p.add_argument("--name", required=True, help="task name")
    p.add_argument(
        "--modality",
        required=True,
        type=str.upper,
        choices=("CT", "MRI", "AUTO"),
        help="CT, MRI, or auto (CT when the first scan holds values <= -500, as air in HU, else MRI)",
    )
    p.add_argument("--classes", required=True, help="label names in value order, e.g. background,spleen")
    p.add_argument("--out", required=True, type=Path, help="task folder to create (must not exist yet)")

    p = sub.add_parser("finetune", help="continue training a checkpoint on a task's labelled cases")
    p.add_argument(
        "--model", required=True, type=Path, help="checkpoint (.safetensors) or model name (see `volseg models`)"
    )
    p.add_argument("--data", required=True, type=Path, help="MSD task folder")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default 2)")
    p.add_argument("--out", required=True, type=Path, help="new checkpoint to write (.safetensors)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None, help="device (default auto)")

    p = sub.add_parser("predict", help="segment scans (NIfTI, NRRD, MetaImage, DICOM series) with a checkpoint")
    p.add_argument(
        "--model",
        required=True,
        help="model name (see `volseg models`), checkpoint (.safetensors) or MONAI bundle folder",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output folder: OUT/<case>.<ext> in each input's own format and world geometry (NIfTI for DICOM)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help="scans: NIfTI, NRRD or MetaImage files, DICOM series folders (or one file of a series), or folders of "
        "them (an MSD task: imagesTs/ or imagesTr/)",
    )
    p.add_argument(
        "--out-format",
        choices=tuple(OUT_FORMATS),
        default="source",
        help="label file format: source (each input's own; NIfTI for a DICOM series), nifti, nrrd, seg.nrrd, mha, "
        "or dicom-seg (a DICOM Segmentation object referencing the DICOM input series)",
    )
    p.add_argument("--series", default=None, help="SeriesInstanceUID to read from a folder holding several series")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on this machine, sharing its cores (a cohort: OUT/manifest.csv, resumable; default 1)",
    )
    p.add_argument("--part", type=int, default=None, help="this process's part, 0 .. PARTS-1 (default: RANK, or 0)")
    p.add_argument(
        "--parts",
        type=int,
        default=None,
        help="how many parts share the inputs, e.g. a SLURM array's size (default: WORLD_SIZE, or 1)",
    )
    p.add_argument(
        "--overlap", type=float, default=None, help="sliding-window overlap (default: the model's stored overlap)"
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average over mirrorings along the axes the model was trained mirrored on, 2x the time per axis "
        "(default: as the model's preset says)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None, help="device (default auto)")

    p = sub.add_parser("qc", help="a cohort's quality report: OUT/qc.html from OUT/manifest.csv (volseg predict)")
    p.add_argument("folder", type=Path, help="the output folder of a cohort's volseg predict (holds manifest.csv)")
    p.add_argument("--no-thumbnails", action="store_true", help="leave out the flagged scans' mid-slice pictures")

    p = sub.add_parser("evaluate", help="per-case, per-class Dice and HD95 of predictions against labels")
    p.add_argument(
        "--pred", required=True, type=Path, help="folder of predicted <case> label files (.nii.gz, .nrrd, .mha, ...)"
    )
    p.add_argument(
        "--truth", required=True, type=Path, help="folder of ground-truth <case> label files (e.g. labelsTr)"
    )
    p.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")

    p = sub.add_parser("preprocess", help="plan a task and cache its preprocessed cases")
    p.add_argument("--data", required=True, type=Path, help="MSD task folder")
    p.add_argument("--preset", default=paths.DEFAULT_PRESET, help="training preset whose plan to use")

    p = sub.add_parser("models", help="list architectures (with parameter counts) and pretrained / installed models")
    p.add_argument("--index", default=None, help="model index (JSON file or URL) listing models to pull")

    p = sub.add_parser("pull", help="download a model named in the model index (SHA-256 checked, resumable)")
    p.add_argument("name", help="model name, as `volseg models` lists it")
    p.add_argument("--index", default=None, help="model index (JSON file or URL; default: the one shipped)")

    p = sub.add_parser("export", help="export a model as ONNX, TorchScript, a bioimage.io package or a MONAI bundle")
    p.add_argument("--model", required=True, help="model name or checkpoint (.safetensors)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "bioimageio", "monai-bundle"))
    p.add_argument(
        "--out", required=True, type=Path, help="file (onnx, torchscript; the plan goes beside it) or folder"
    )

    p = sub.add_parser("import", help="import a MONAI bundle (UNet, BasicUNet, SegResNet) as a napari-volseg model")
    p.add_argument("--monai-bundle", required=True, type=Path, help="bundle folder (configs/, models/model.pt)")
    p.add_argument("--out", type=Path, default=None, help="model file to write (default: the user's models folder)")
    sub.add_parser("presets", help="list training presets, one line each")

    from napari_volseg.classify.cli import add_parser as add_classify_parser
    from napari_volseg.interactive.cli import add_parser as add_interact_parser

    add_interact_parser(sub)

    add_classify_parser(sub)

    p = sub.add_parser("demo", help="open napari on the synthetic task (or --headless: the same flow, no window)")
    p.add_argument("--headless", action="store_true", help="no window: write a screenshot and a metrics JSON")
    p.add_argument("--out", type=Path, default=Path("volseg-demo"), help="output folder for --headless")
    p.add_argument("--data", type=Path, default=None, help="an MSD task folder instead of the synthetic task")
    p.add_argument("--kind", choices=("ct", "mri"), default="ct", help="synthetic phantom kind (default ct)")
    p.add_argument("--minutes", type=float, default=None, help="training budget in minutes (default 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except VolsegError as exc:
        print(f"volseg: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment, not a bug: a full disk, a vanished or unreadable file
        where = f": {exc.filename}" if exc.filename else ""
        print(f"volseg: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("volseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
