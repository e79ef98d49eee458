"""``volseg demo``: napari on the synthetic task, or the same flow headless."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    import importlib.util
    import os

    if importlib.util.find_spec("PyQt6") is not None:  # napari's recommended binding; PyQt5 is deprecated there
        os.environ.setdefault("QT_API", "pyqt6")
    from napari_volseg._napari.demo import run_viewer

    return run_viewer(data=args.data, kind=args.kind)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="open napari on the synthetic task (or --headless: the same flow, no window)")
    p.add_argument("--headless", action="store_true", help="no window: write a screenshot and a metrics JSON")
    p.add_argument("--out", type=Path, default=Path("volseg-demo"), help="output folder for --headless")
    p.add_argument("--data", type=Path, default=None, help="an MSD task folder instead of the synthetic task")
    p.add_argument("--kind", choices=("ct", "mri"), default="ct", help="synthetic phantom kind (default ct)")
    p.add_argument("--minutes", type=float, default=None, help="training budget in minutes (default 2)")
    p.set_defaults(run=_demo)
