"""Commands that segment and score: predict (a cohort: sharded, resumable), evaluate, qc."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_volseg.cli.common import progress_bar
from napari_volseg.cli.settings import add_settings, given
from napari_volseg.config import InferConfig
from napari_volseg.io.volumes import OUT_FORMATS
from napari_volseg.outputs import check_writable


def _predict(args: argparse.Namespace) -> int:
    from napari_volseg.cohort.run import CohortSummary, predict_cohort

    # unset flags keep what the checkpoint's preset predicts with
    overrides = given(args, InferConfig)
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
            bar = progress_bar("predict", total=event.total, unit="scan")
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


def _qc(args: argparse.Namespace) -> int:
    from napari_volseg.cohort.qc import write_report

    report, flagged = write_report(args.folder, thumbnails=not args.no_thumbnails)
    print(f"{len(flagged)} scan(s) flagged: {report}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    add_settings(p, InferConfig, "inference settings (unset: the model's own)")
    p.set_defaults(run=_predict)

    p = sub.add_parser("evaluate", help="per-case, per-class Dice and HD95 of predictions against labels")
    p.add_argument(
        "--pred", required=True, type=Path, help="folder of predicted <case> label files (.nii.gz, .nrrd, .mha, ...)"
    )
    p.add_argument(
        "--truth", required=True, type=Path, help="folder of ground-truth <case> label files (e.g. labelsTr)"
    )
    p.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("qc", help="a cohort's quality report: OUT/qc.html from OUT/manifest.csv (volseg predict)")
    p.add_argument("folder", type=Path, help="the output folder of a cohort's volseg predict (holds manifest.csv)")
    p.add_argument("--no-thumbnails", action="store_true", help="leave out the flagged scans' mid-slice pictures")
    p.set_defaults(run=_qc)
