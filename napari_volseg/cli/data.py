"""Commands that make, fetch and prepare tasks: synth, download, new-task, preprocess, presets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_volseg import config, paths
from napari_volseg.cli.common import follow_download, progress_bar


def _synth(args: argparse.Namespace) -> int:
    from napari_volseg.io import synthetic

    folder = synthetic.write_task(
        args.out, cases=args.cases, kind=args.kind, seed=args.seed, test_cases=args.test_cases
    )
    print(f"wrote {args.cases} synthetic {args.kind.upper()} case(s) to {folder}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from napari_volseg.io import download

    folder = follow_download(
        download.download_task(args.task, args.out, base_url=args.base_url, md5=args.md5), args.task
    )
    print(f"{args.task} is ready in {folder}")
    return 0


def _new_task(args: argparse.Namespace) -> int:
    from napari_volseg.io.decathlon import load_task
    from napari_volseg.io.layouts import detect_layout, propose
    from napari_volseg.io.new_task import write_task_from_files

    images, labels, classes = args.images, args.labels, args.classes
    layout = detect_layout(images) if labels is None else None
    if layout is not None and layout.images != Path(images):  # images/ (+ labels/), nnU-Net's, *_seg beside scans
        images, labels = layout.images, layout.labels
        print(f"found {layout.kind}: scans in {images}" + (f", labels in {labels}" if labels else ""), file=sys.stderr)
    elif layout is not None and layout.labels is not None:  # *_seg labels beside the scans
        labels = layout.labels
        print(f"found {layout.kind}: labels in {labels}", file=sys.stderr)
    if classes.strip().lower() == "auto":
        classes, note = (layout.classes, "") if layout is not None and layout.classes else propose(images, labels)
        print(f"classes: {classes}", file=sys.stderr)
        if note:
            print(f"warning: {note}", file=sys.stderr)
    folder = write_task_from_files(
        images, args.out, name=args.name, modality=args.modality, classes=classes, labels=labels
    )
    task = load_task(folder)
    sparse = sum(c.sparse for c in task.cases)
    print(
        f"wrote task {task.name} to {folder}: {len(task.cases)} labelled case(s)"
        + (f" ({sparse} sparse)" if sparse else "")
        + f", {len(task.test_cases)} to annotate in imagesTs/"
    )
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    from napari_volseg import planning
    from napari_volseg.cache import PreparedCache
    from napari_volseg.config import load_preset
    from napari_volseg.io.decathlon import load_task

    preset = load_preset(args.preset)
    task = load_task(args.data)
    planned = planning.plan_run(task, preset)
    plan, cascade = planned.plan, planned.cascade
    if cascade:
        print(
            f"{preset.name} trains {task.name} as a cascade: caching the locator's coarse grid "
            "(regions of interest are cut while training)",
            file=sys.stderr,
        )
    cache = PreparedCache(plan)
    bar = progress_bar("preprocess", total=len(task.cases), unit="case")
    for _ in cache.fill(task.cases):
        bar.update(1)
    bar.close()
    print(f"plan {plan.hash}: {cache.misses} case(s) preprocessed, {cache.hits} already cached, in {cache.folder}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from napari_volseg.config import list_presets

    for name, preset in list_presets().items():
        print(f"{name:<24} [{preset.model}] {preset.description}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic MSD-format task (CT spleen or MRI left atrium phantom)")
    p.add_argument("--out", required=True, type=Path, help="task folder to write")
    p.add_argument("--cases", type=int, default=8, help="labelled cases (default 8)")
    p.add_argument("--kind", choices=("ct", "mri"), default="ct", help="phantom kind (default ct)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same volumes")
    p.add_argument("--test-cases", type=int, default=0, help="unlabelled cases in imagesTs/ (default 0)")
    p.set_defaults(run=_synth)

    p = sub.add_parser("download", help="download and extract an MSD task (checksummed, resumable)")
    p.add_argument("task", help="task name, e.g. Task09_Spleen or Task02_Heart")
    p.add_argument("--out", required=True, type=Path, help="folder that receives the task folder")
    p.add_argument("--base-url", default=paths.MSD_BASE_URL, help="mirror URL")
    p.add_argument("--md5", default=None, help="expected MD5 (known for the ten MSD tasks)")
    p.set_defaults(run=_download)

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
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="folder of label files named like their scans (default: found in --images' layout: images/ beside "
        "labels/, nnU-Net's imagesTr/ + labelsTr/, or *_seg files beside the scans)",
    )
    p.add_argument("--name", required=True, help="task name")
    p.add_argument(
        "--modality",
        required=True,
        type=str.upper,
        choices=("CT", "MRI", "AUTO"),
        help="CT, MRI, or auto (CT when the first scan holds values <= -500, as air in HU, else MRI)",
    )
    p.add_argument(
        "--classes",
        required=True,
        help="label names in value order, e.g. background,spleen; auto: one per value the labels hold (label1, ...)",
    )
    p.add_argument("--out", required=True, type=Path, help="task folder to create (must not exist yet)")
    p.set_defaults(run=_new_task)

    p = sub.add_parser("preprocess", help="plan a task and cache its preprocessed cases")
    p.add_argument("--data", required=True, type=Path, help="MSD task folder")
    p.add_argument("--preset", default=config.DEFAULT_PRESET, help="training preset whose plan to use")
    p.set_defaults(run=_preprocess)

    p = sub.add_parser("presets", help="list training presets, one line each")
    p.set_defaults(run=_presets)
