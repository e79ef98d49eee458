"""The ``volseg`` command line: the same core as the napari widgets, with no window.

Every failure the user can act on is one line on stderr and exit status 1; a bad command line
is argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from napari_volseg import __version__
from napari_volseg.errors import VolsegError

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


@command("download")
def _download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_volseg.io import download

    bar = tqdm(unit="B", unit_scale=True, desc=args.task, disable=None)

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        folder = download.download_task(args.task, args.out, base_url=args.base_url, md5=args.md5, progress=progress)
    finally:
        bar.close()
    print(f"{args.task} is ready in {folder}")
    return 0


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from napari_volseg import demo

    if args.headless:
        summary = demo.run_headless(Path(args.out), data=args.data, kind=args.kind, minutes=args.minutes)
        print(f"wrote {summary['screenshot']} and {summary['metrics']}")
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
    p.add_argument("--base-url", default="https://msd-for-monai.s3-us-west-2.amazonaws.com", help="mirror URL")
    p.add_argument("--md5", default=None, help="expected MD5 (known for the ten MSD tasks)")

    p = sub.add_parser("demo", help="open napari on the synthetic task (or --headless: the same flow, no window)")
    p.add_argument("--headless", action="store_true", help="no window: write a screenshot and a metrics JSON")
    p.add_argument("--out", type=Path, default=Path("volseg-demo"), help="output folder for --headless")
    p.add_argument("--data", type=Path, default=None, help="an MSD task folder instead of the synthetic task")
    p.add_argument("--kind", choices=("ct", "mri"), default="ct", help="synthetic phantom kind (default ct)")
    p.add_argument("--minutes", type=float, default=None, help="training budget of the demo in minutes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except VolsegError as exc:
        print(f"volseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("volseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
