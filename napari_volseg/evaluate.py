"""Evaluate a folder of predictions against a folder of labels, like nnU-Net's ``evaluate_folder``."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from napari_volseg import metrics
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon, nifti
from napari_volseg.outputs import atomic_write


def _by_case(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise VolsegError(f"{folder} is not a folder")
    return {
        decathlon.case_id_of(p): p
        for p in sorted(folder.iterdir())
        if nifti.is_nifti_path(p) and not p.name.startswith("._")
    }


def _label_names(truth: Path) -> dict[int, str]:
    for candidate in (truth.parent, truth):
        if (candidate / "dataset.json").is_file():
            try:
                return decathlon.load_task(candidate).labels
            except VolsegError:
                pass
    return {}


def evaluate_folder(pred: str | os.PathLike, truth: str | os.PathLike) -> tuple[list[dict], dict[int, dict]]:
    """Rows (case, label, name, dice, hd95, empty, pred_ml, true_ml) and the per-class mean."""
    pred, truth = Path(pred), Path(truth)
    preds, truths = _by_case(pred), _by_case(truth)
    common = sorted(set(preds) & set(truths))
    if not common:
        raise VolsegError(f"no case of {pred} has a label of the same name in {truth}")
    names = _label_names(truth)
    rows = []
    for case in common:
        p = nifti.load(preds[case], label=True)
        t = nifti.load(truths[case], label=True)
        decathlon.check_same_grid(p, t, case)
        num_classes = max(int(p.data.max()), int(t.data.max()), max(names, default=1)) + 1
        for s in metrics.score_case(p.data, t.data, num_classes, t.spacing):
            rows.append(
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
            )
    summary: dict[int, dict] = {}
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        hds = [r["hd95"] for r in mine if not math.isnan(r["hd95"])]
        summary[label] = {
            "dice": float(np.mean([r["dice"] for r in mine])),
            "hd95": float(np.mean(hds)) if hds else float("nan"),
            "cases": len(mine),
        }
    return rows, summary


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["case"])
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)
