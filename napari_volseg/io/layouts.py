"""How people lay out a folder of scans (``images/`` beside ``labels/``, nnU-Net's ``imagesTr/`` + ``labelsTr/``,
``*_seg`` labels beside their scans, scans alone), and the classes their label values propose: what "New task from
images" and ``volseg new-task --classes auto`` start from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_volseg.io import volumes
from napari_volseg.io.new_task import DEFAULT_UNLABELLED, IMAGE_FOLDERS, LABEL_FOLDERS, label_suffix_of, scans_in


@dataclass(frozen=True)
class Layout:
    """Where a folder's scans and labels are, as people lay them out, and what the task would be called."""

    images: Path
    labels: Path | None
    name: str
    kind: str
    """``"images/ + labels/"``, ``"nnU-Net imagesTr/ + labelsTr/"``, ``"scans with *_seg labels"`` or ``"scans"``."""
    classes: str = ""
    """Class names in value order where the folder says them (an nnU-Net ``dataset.json``), else empty."""
    modality: str = ""


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The subfolder of ``folder`` with the first of ``names`` (any case)."""
    try:
        children = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    except OSError:
        return None
    return next((children[n] for n in names if n in children), None)


def _nnunet_meta(folder: Path) -> tuple[str, str]:
    """Class names and modality from an nnU-Net v2 ``dataset.json`` (``labels``: name -> value), or empty."""
    import json

    try:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        by_value = {int(v): str(k) for k, v in meta.get("labels", {}).items() if not isinstance(v, list)}
        channels = meta.get("channel_names") or meta.get("modality") or {}
    except (OSError, ValueError, TypeError, AttributeError):
        return "", ""
    classes = ",".join(by_value[v] for v in sorted(by_value)) if sorted(by_value) == list(range(len(by_value))) else ""
    first = str(next(iter(channels.values()), "")).upper() if isinstance(channels, dict) else ""
    return classes, "CT" if first == "CT" else "MRI" if first in ("MRI", "MR", "T1", "T2", "FLAIR") else ""


def detect_layout(folder: str | os.PathLike) -> Layout | None:
    """The layout of a folder of scans without an MSD ``dataset.json``, or None where it holds no scans: a folder
    holding ``images/`` and ``labels/`` (or nnU-Net's ``imagesTr/`` and ``labelsTr/``), an ``images/`` folder
    whose ``labels/`` sits beside it, scans with ``*_seg`` labels beside them, or scans alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    images, labels = _child(folder, IMAGE_FOLDERS), _child(folder, LABEL_FOLDERS)
    if images is not None and _holds_scans(images):
        nnunet = images.name.lower() == "imagestr"
        classes, modality = _nnunet_meta(folder) if nnunet else ("", "")
        kind = (
            "nnU-Net imagesTr/ + labelsTr/"
            if nnunet
            else f"{images.name}/ + {labels.name}/"
            if labels
            else f"{images.name}/"
        )
        return Layout(images, labels, folder.name, kind, classes, modality)
    if not _holds_scans(folder):
        return None
    if folder.name.lower() in IMAGE_FOLDERS:
        beside = _child(folder.parent, LABEL_FOLDERS)
        if beside is not None:
            return Layout(folder, beside, folder.parent.name, f"{folder.name}/ + {beside.name}/")
    if folder.name.lower() in LABEL_FOLDERS:  # labels/ dropped (with or without images/): its scans are beside it
        beside = _child(folder.parent, IMAGE_FOLDERS)
        if beside is not None and _holds_scans(beside):
            return Layout(beside, folder, folder.parent.name, f"{beside.name}/ + {folder.name}/")
    try:
        flat = any(label_suffix_of(volumes.case_id(p)) for p in folder.iterdir() if volumes.is_scan_file(p))
    except OSError:
        flat = False
    if flat:
        return Layout(folder, folder, folder.name, "scans with *_seg labels")
    return Layout(folder, None, folder.name, "scans")


def _holds_scans(folder: Path) -> bool:
    try:
        return any(volumes.is_scan_file(p) or (p.is_dir() and volumes.holds_dicom(p)) for p in folder.iterdir())
    except OSError:
        return False


def propose_classes(images: str | os.PathLike, labels: str | os.PathLike | None) -> str:
    """Class names for the values the labels hold (:func:`propose`)."""
    return propose(images, labels)[0]


def propose(images: str | os.PathLike, labels: str | os.PathLike | None) -> tuple[str, str]:
    """Class names for the values the labels hold, in value order (``background,label1,label2`` for labels holding
    0, 1 and 2; the unlabelled value 255 is not a class; ``background,foreground`` without labels), and a note
    (else "") where the label files mark their foreground with values no other file uses: files holding only 1 beside
    files holding only 2 are two classes as read, though they often mark one structure. Every label file is read (in
    a worker: a task's labels take seconds)."""
    if labels is None:
        return "background,foreground", ""
    flat = Path(labels).resolve() == Path(images).resolve()
    per_file: list[frozenset[int]] = []
    for path, _ in scans_in(Path(labels), "labels", flat).values():
        found = {int(v) for v in np.unique(volumes.read(path, label=True).data)}
        per_file.append(frozenset(found - {0, DEFAULT_UNLABELLED}))
    values = set().union(*per_file) if per_file else set()
    top = max(values, default=1)
    classes = ",".join(["background"] + [f"label{v}" for v in range(1, max(top, 1) + 1)])
    return classes, _disjoint_note(per_file)


def _disjoint_note(per_file: list[frozenset[int]]) -> str:
    marked = [f for f in per_file if f]
    if all(a & b for a in marked for b in marked):
        return ""
    counts = {v: sum(v in f for f in marked) for v in sorted(set().union(*marked))}
    held = ", ".join(f"{n} hold {v}" for v, n in counts.items())
    return (
        f"the label files mark their foreground with different values ({held} of {len(marked)} files): as read, "
        "each value is a class of its own; if they mark one structure, give them one value first"
    )
