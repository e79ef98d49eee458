"""Accept a corrected label: write it to ``labelsTr/`` in the scan's own geometry and make the case a
training case in ``dataset.json`` (rewritten atomically). A label file already there is copied to
``backups/`` first, never overwritten unsaved; :func:`undo` puts back both files as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_volseg.errors import GeometryMismatchError, LabelValueError, TaskFormatError
from napari_volseg.io import volumes
from napari_volseg.io.decathlon import UNLABELLED_KEY, Task, write_dataset_json
from napari_volseg.io.new_task import DEFAULT_UNLABELLED, nifti_suffix
from napari_volseg.outputs import check_writable

BACKUP_DIR = "backups"


@dataclass(frozen=True)
class Accepted:
    """What one accept changed, enough to undo it: the label written, its backup (None if the case had
    no label before) and ``dataset.json`` as it was."""

    case_id: str
    label_path: Path
    backup: Path | None
    previous_meta: dict
    sparse: bool


def _read_meta(root: Path) -> dict:
    try:
        return json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TaskFormatError(f"cannot read {root.name}/dataset.json ({exc})") from exc


def _rel(path: Path, root: Path) -> str:
    return "./" + Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()


def _same_file(rel: object, path: Path, root: Path) -> bool:
    return isinstance(rel, str) and (root / rel).resolve() == Path(path).resolve()


def check_label(task: Task, labels_zyx: np.ndarray) -> bool:
    """Raise :class:`LabelValueError` for values that are neither classes nor the unlabelled value;
    True when the label is sparse (holds the unlabelled value)."""
    values = {int(v) for v in np.unique(labels_zyx)}
    unlabelled = task.unlabelled if task.unlabelled is not None else DEFAULT_UNLABELLED
    unknown = sorted(values - set(task.labels) - {unlabelled})
    if unknown:
        named = ", ".join(f"{k} {v}" for k, v in sorted(task.labels.items()))
        raise LabelValueError(
            f"the label holds value(s) {unknown}; {task.name} names {named} (unlabelled {unlabelled})"
        )
    return unlabelled in values


def accept(task: Task, case_id: str, labels_zyx: np.ndarray) -> Accepted:
    """Write ``labels_zyx`` (canonical ``(z, y, x)``, the scan's shape) as ``case_id``'s label; returns
    what :func:`undo` needs. A sparse label makes the task declare ``"unlabelled"`` if it did not."""
    root = task.root
    check_writable(root, folder=True, what="task folder (accepting labels writes into it)")
    case = task.case(case_id)
    geometry = case.geometry()
    labels_zyx = np.asarray(labels_zyx)
    if tuple(labels_zyx.shape) != geometry.shape_zyx:
        raise GeometryMismatchError(f"{case_id}: label shape {labels_zyx.shape} is not the scan's {geometry.shape_zyx}")
    sparse = check_label(task, labels_zyx)
    meta = _read_meta(root)
    previous = json.loads(json.dumps(meta))
    label_path = case.label_path or root / "labelsTr" / f"{case_id}.nii.gz"
    backup = None
    if label_path.exists():
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"
        backup = root / BACKUP_DIR / f"{case_id}.{stamp}{nifti_suffix(label_path)}"
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(label_path, backup)
    try:
        volumes.write_labels(label_path, labels_zyx, geometry)
        _make_training_case(meta, root, case.image_path, label_path, sparse)
        if sparse and UNLABELLED_KEY not in meta:
            meta[UNLABELLED_KEY] = DEFAULT_UNLABELLED
        write_dataset_json(root, meta)
    except BaseException:
        _restore(label_path, backup)
        raise
    return Accepted(case_id=case_id, label_path=label_path, backup=backup, previous_meta=previous, sparse=sparse)


def _make_training_case(meta: dict, root: Path, image: Path, label: Path, sparse: bool) -> None:
    meta["test"] = [
        t for t in meta.get("test") or [] if not _same_file(t.get("image") if isinstance(t, dict) else t, image, root)
    ]
    training = meta.setdefault("training", [])
    entry = next((e for e in training if isinstance(e, dict) and _same_file(e.get("image"), image, root)), None)
    if entry is None:
        entry = {"image": _rel(image, root)}
        training.append(entry)
    entry["label"] = _rel(label, root)
    if sparse:
        entry["sparse"] = True
    else:
        entry.pop("sparse", None)
    meta["numTraining"] = len(training)
    meta["numTest"] = len(meta["test"])


def _restore(label_path: Path, backup: Path | None) -> None:
    if backup is not None:
        os.replace(backup, label_path)
    else:
        label_path.unlink(missing_ok=True)


def undo(root: str | os.PathLike, accepted: Accepted) -> None:
    """Put back the label file (from its backup, or remove the new one) and ``dataset.json`` as they were."""
    _restore(accepted.label_path, accepted.backup)
    write_dataset_json(Path(root), accepted.previous_meta)


def undo_report(case_id: str, model: str | os.PathLike | None, task_name: str) -> str:
    """What an undone accept leaves: the case back among those to annotate, and, where the model in use trained on
    it (a fine-tune after the accept), that it did (the walkthrough's v001 trained on the undone case stayed in use
    without a word)."""
    from napari_volseg.engine.provenance import Provenance  # the checkpoint header: torch, when first needed

    text = f"undid the accept of {case_id}: it is back among the cases to annotate"
    if model is not None and case_id in Provenance.read(model).trained_in(task_name):
        text += f"; {Path(model).stem}, in use, trained on it: double-click an earlier version to go back"
    return text
