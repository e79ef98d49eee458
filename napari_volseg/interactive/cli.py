"""``volseg interact``: replay prompts on a scan with no window; ``volseg train --interactive`` and ``volseg finetune``
of a promptable model (registered by ``napari_volseg.cli``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_volseg.errors import VolsegError
from napari_volseg.interactive import prompts as p


def add_parser(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "interact", help="replay click / box / scribble prompts on a scan (no window) and write the object's mask"
    )
    q.set_defaults(run=interact)
    q.add_argument(
        "--model",
        required=True,
        help="a promptable model (msd-heart-interactive, volseg-interactive, a checkpoint) or random-walker (no model)",
    )
    q.add_argument("--image", required=True, type=Path, help="scan: NIfTI, NRRD, MetaImage or a DICOM series folder")
    q.add_argument(
        "--prompts",
        required=True,
        type=Path,
        help='JSON list: {"click": [z, y, x], "positive": true}, '
        '{"box": [y0, x0, y1, x1], "z": 40}, {"scribble": [[z, y, x], ...], "positive": false}, {"undo": true}, '
        '{"reset": true}; voxel indices of the scan as the plugin shows it (z, y, x; LPS+)',
    )
    q.add_argument(
        "--out", required=True, type=Path, help="mask to write (.nii.gz, .nrrd, .mha, .dcm) on the scan's grid"
    )
    q.add_argument("--start-from", type=Path, default=None, help="a mask to correct (e.g. a prediction), same grid")
    q.add_argument("--series", default=None, help="SeriesInstanceUID where the folder holds several DICOM series")
    q.add_argument("--channel", type=int, default=None, help="the channel of a multi-channel scan")


def interact(args: argparse.Namespace) -> int:
    from napari_volseg.interactive import open_interactive
    from napari_volseg.io import volumes
    from napari_volseg.outputs import check_writable

    check_writable(args.out)
    script = p.read_script(args.prompts)
    session = open_interactive(args.model, args.image, series=args.series, channel=args.channel)
    if args.start_from is not None:
        start = volumes.read(args.start_from, label=True)
        if not start.geometry.same_world_grid(session.geometry):
            raise VolsegError(
                f"{args.start_from.name} is not on {args.image.name}'s grid: start from a mask of this scan"
            )
        session.start_from(start.data)
    for i, action in enumerate(script, 1):
        try:
            mask = _apply(session, action)
        except p.PromptError as exc:
            raise p.PromptError(f"prompt {i}: {exc}") from None
        timing = f", {session.last.seconds:.2f} s" if session.last is not None and "undo" not in action else ""
        print(f"{i}: {_describe(action)} -> {int(mask.sum()):,} voxels{timing}")
        session.last = None
    out = volumes.write_labels(args.out, session.result(), session.geometry, {1: "object"})
    counts = ", ".join(f"{v} {k}" for k, v in session.counts.items() if v)
    print(
        f"wrote {out} ({int(session.mask.sum()):,} voxels, {session.mask.sum() * _ml(session):.1f} mL; {counts or 'no prompts'})"
    )
    return 0


def _ml(session) -> float:
    sz, sy, sx = session.spacing
    return sz * sy * sx / 1000.0


def _apply(session, action: dict):
    if "click" in action:
        return session.click(action["click"], bool(action.get("positive", True)))
    if "box" in action:
        if "z" not in action:
            raise p.PromptError('a box needs its slice: {"box": [y0, x0, y1, x1], "z": 40}')
        return session.box(action["z"], action["box"])
    if "scribble" in action:
        return session.scribble(action["scribble"], bool(action.get("positive", True)))
    if "undo" in action:
        return session.undo()
    return session.reset()


def _describe(action: dict) -> str:
    sign = "+" if action.get("positive", True) else "-"
    if "click" in action:
        return f"click {sign} {tuple(action['click'])}"
    if "box" in action:
        return f"box z={action.get('z')} {tuple(action['box'])}"
    if "scribble" in action:
        return f"scribble {sign} ({len(action['scribble'])} voxels)"
    return "undo" if "undo" in action else "reset"
