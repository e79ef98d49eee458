"""The ``volseg`` command line: the same core as the napari widgets, with no window.

One module per group of commands, each with its ``add_parsers`` beside the commands it adds; the settings' flags are
generated from the same metadata as the napari forms (:mod:`napari_volseg.cli.settings`). Every failure the user can
act on is one line on stderr and exit status 1; a bad command line is argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from napari_volseg import __version__
from napari_volseg.cli import data, demo, results, training, zoo
from napari_volseg.errors import VolsegError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="volseg", description="3D U-Net segmentation of MSD-format medical volumes.")
    parser.add_argument("--version", action="version", version=f"napari-volseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from napari_volseg.classify.cli import add_parser as add_classify_parser
    from napari_volseg.interactive.cli import add_parser as add_interact_parser

    data.add_parsers(sub)
    training.add_parsers(sub)
    results.add_parsers(sub)
    zoo.add_parsers(sub)
    add_interact_parser(sub)
    add_classify_parser(sub)
    demo.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.run(args)
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
