"""Scored predictions: one result per case, one row schema for tables, CSV and the CLI, and
:func:`evaluate_folder` (a folder of predictions against a folder of labels, like nnU-Net's).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_volseg import metrics
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon, volumes
from napari_volseg.outputs import atomic_write, check_writable

ROW_FIELDS = ("case", "label", "name", "dice", "hd95", "empty", "pred_ml", "true_ml")
"""The columns of a result row: one row per case and foreground class (HD95 in mm, volumes in mL)."""

MODEL_FIELDS = ("model", "trained_on")
"""Columns a predicted result adds (the Predict table's CSV): the model's checkpoint file, and whether the model
was trained on the case (its Dice then says little about unseen scans)."""

COHORT_FIELDS = ("confidence",)
"""Columns a cohort's manifest adds (``volseg evaluate`` on a cohort's folder): the expected edit share."""


@dataclass
class CaseResult:
    """One case's prediction and its scores against the ground truth (none for a test case)."""

    case: str
    labels: np.ndarray
    """uint8 ``(z, y, x)`` on the source volume's canonical grid."""
    geometry: volumes.Geometry
    """The source volume's geometry: where the labels are written back to (NIfTI, source voxel order)."""
    scores: list[metrics.ClassScore] = field(default_factory=list)
    errors: np.ndarray | None = None
    """The FP/FN map (:func:`~napari_volseg.metrics.error_map`) against the ground truth; None without one."""
    seconds: float = 0.0
    """Inference time in seconds (prediction only, no loading or scoring)."""
    trained_on: bool | None = False
    """The model was trained on this case (its checkpoint lists it; a dropped scan by its name or file digest): its
    Dice says little about unseen scans. None: nobody can say (a checkpoint that lists no training case)."""
    model: str = ""
    """The model that predicted it (:class:`~napari_volseg.engine.provenance.Provenance`: its checkpoint file, resolved)."""


def score_rows(case: str, scores: list[metrics.ClassScore], names: dict[int, str]) -> list[dict]:
    """One row per scored class of ``case`` (see :data:`ROW_FIELDS`)."""
    return [
        {
            "case": case,
            "label": s.label,
            "name": names.get(s.label, str(s.label)),
            "dice": s.dice,
            "hd95": s.hd95,
            "empty": s.empty,
            "pred_ml": s.pred_ml,
            "true_ml": s.true_ml,
        }
        for s in scores
    ]


def result_rows(result: CaseResult, names: dict[int, str]) -> list[dict]:
    """The rows of a predicted case (:data:`ROW_FIELDS` and :data:`MODEL_FIELDS`)."""
    extra = {"model": result.model, "trained_on": "" if result.trained_on is None else result.trained_on}
    return [{**row, **extra} for row in score_rows(result.case, result.scores, names)]


def summarise(rows: list[dict]) -> dict[int, dict]:
    """Per class: mean Dice, mean HD95 over the cases where it is defined, and the case count."""
    summary: dict[int, dict] = {}
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        hds = [r["hd95"] for r in mine if not math.isnan(r["hd95"])]
        summary[label] = {
            "dice": float(np.mean([r["dice"] for r in mine])),
            "hd95": float(np.mean(hds)) if hds else float("nan"),
            "cases": len(mine),
        }
    return summary


def _by_case(folder: Path) -> dict[str, Path]:
    """The label files of ``folder`` by case (hidden files, temporaries and ``._`` files passed over); two files of
    one case (``la_004.nii.gz`` and ``la_004.nrrd``) are one line, not one of them scored in silence."""
    if not folder.is_dir():
        raise VolsegError(f"{folder} is not a folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if volumes.format_of(p) not in ("nifti", "nrrd", "metaimage") or p.name.startswith("."):
            continue
        case = volumes.case_id(p)
        if case in found:
            raise VolsegError(f"{folder} holds two label files of case {case}: {found[case].name} and {p.name}")
        found[case] = p
    return found


def _label_names(truth: Path) -> dict[int, str]:
    for candidate in (truth.parent, truth):
        if (candidate / "dataset.json").is_file():
            try:
                return decathlon.load_task(candidate).labels
            except VolsegError:
                pass
    return {}


def evaluate_folder(pred: str | os.PathLike, truth: str | os.PathLike) -> tuple[list[dict], dict[int, dict]]:
    """Rows (:data:`ROW_FIELDS`) of every case with a prediction and a label, and the per-class summary."""
    pred, truth = Path(pred), Path(truth)
    preds, truths = _by_case(pred), _by_case(truth)
    common = sorted(set(preds) & set(truths))
    if not common:
        seg = any(p.name.lower().endswith(".dcm") for p in pred.iterdir())
        raise VolsegError(
            f"no case of {pred} has a label of the same name in {truth}"
            + ("; its .dcm DICOM SEG files are not scored: predict with --out-format source (NIfTI)" if seg else "")
        )
    names = _label_names(truth)
    rows = []
    for case in common:
        p = volumes.read(preds[case], label=True)
        t = volumes.read(truths[case], label=True)
        decathlon.check_same_grid(p, t, case)
        num_classes = max(int(p.data.max()), int(t.data.max()), max(names, default=1)) + 1
        rows += score_rows(case, metrics.score_case(p.data, t.data, num_classes, t.spacing), names)
    return rows, summarise(rows)


def unlabelled_predictions(pred: str | os.PathLike, truth: str | os.PathLike) -> list[str]:
    """The cases of ``pred`` that :func:`evaluate_folder` cannot score: no label of the same name in ``truth``."""
    return sorted(set(_by_case(Path(pred))) - set(_by_case(Path(truth))))


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write result rows (:data:`ROW_FIELDS`, then :data:`MODEL_FIELDS` and :data:`COHORT_FIELDS` where the rows have
    them) as CSV,
    atomically."""
    fields = ROW_FIELDS + tuple(f for f in MODEL_FIELDS + COHORT_FIELDS if any(f in row for row in rows))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)


def mean_text(results: list[CaseResult]) -> str:
    """One line of means: the mean Dice over the scored cases the model never trained on, and apart from it the mean
    over the cases it did train on (a shipped model scored on its own training cases reads too high)."""
    scored = [(metrics.mean_dice(r.scores), r.trained_on) for r in results if r.scores]
    unseen = [d for d, trained in scored if not trained]
    seen = [d for d, trained in scored if trained]
    if not seen:
        return f"mean Dice over {len(unseen)} case(s): {np.mean(unseen):.4f}" if unseen else ""
    text = f"mean Dice over {len(unseen)} case(s) it never trained on: {np.mean(unseen):.4f}; over" if unseen else ""
    return (text or "mean Dice over") + f" its {len(seen)} training case(s) (*): {np.mean(seen):.4f}"


def predicted_ml(result: CaseResult) -> float:
    """The predicted foreground's volume in mL, from the labels alone (a scan predicted without ground truth)."""
    if result.geometry is None:
        return float("nan")
    return float((result.labels > 0).sum()) * float(np.prod(result.geometry.spacing_zyx)) / 1000.0


def table_values(result: CaseResult, labels: list[int]) -> list[tuple[float, int]]:
    """A result's row of numbers with their decimals: Dice per class, HD95 (mm) per class, predicted and true mL."""
    by_label = {s.label: s for s in result.scores}
    nan = float("nan")
    values = [(by_label[k].dice if k in by_label else nan, 4) for k in labels]
    values += [(by_label[k].hd95 if k in by_label else nan, 2) for k in labels]
    predicted = sum(s.pred_ml for s in result.scores) if result.scores else predicted_ml(result)
    values.append((predicted, 1))
    values.append((sum(s.true_ml for s in result.scores) if result.scores else nan, 1))
    return values


NOTHING_TO_SAVE = "no predictions to save yet: predict first"
NOTHING_TO_EXPORT = "nothing to export yet: predict cases with ground truth first"
"""What saving predictions and exporting scores say with nothing to write."""


def write_predictions(results: list[CaseResult], folder: str | os.PathLike) -> list[Path]:
    """Each prediction as ``folder/<case>.<ext>`` in its scan's own format and geometry (NIfTI for a DICOM series);
    the folder is checked, and an empty list is one line, before any file is written."""
    folder = check_writable(folder, folder=True, what="prediction folder")
    if not results:
        raise VolsegError(NOTHING_TO_SAVE)
    return [
        volumes.write_labels(folder / f"{r.case}{volumes.label_suffix(r.geometry.source_format)}", r.labels, r.geometry)
        for r in results
    ]


def export_scores(results: list[CaseResult], names: dict[int, str], path: str | os.PathLike) -> tuple[Path, int]:
    """The scores of ``results`` as CSV at ``path`` (checked first); the file and how many cases it holds."""
    path = check_writable(path, what="CSV table")
    rows = [row for r in results for row in result_rows(r, names)]
    if not rows:
        raise VolsegError(NOTHING_TO_EXPORT)
    return write_csv(rows, path), len({row["case"] for row in rows})
