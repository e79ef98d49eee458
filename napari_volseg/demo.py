"""``volseg demo``'s flow without a window: the task, what is in it, a picture and a metrics JSON.

The synthetic task is the default so that the demo runs anywhere, offline, in seconds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from napari_volseg import overview
from napari_volseg.io import decathlon, synthetic


def demo_task(data: Path | None = None, kind: str = "ct", cases: int = 8) -> decathlon.Task:
    """The task the demo works on: ``data`` if given, else the cached synthetic task."""
    if data is not None:
        return decathlon.load_task(data)
    from napari_volseg._napari.sample_data import synthetic_task_dir

    return decathlon.load_task(synthetic_task_dir(kind, cases))


def run_headless(out: Path, data: Path | None = None, kind: str = "ct", minutes: float | None = None) -> dict:
    """Run the demo flow with no window; writes ``screenshot.png`` and ``metrics.json`` into ``out``."""
    started = time.perf_counter()
    task = demo_task(data, kind)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    first = None
    for case in task.cases:
        image, label = case.load()
        if first is None:
            first = (image, label)
        fg = int((label.data > 0).sum()) if label is not None else 0
        rows.append(
            {
                "case": case.id,
                "shape_zyx": list(image.data.shape[-3:]),
                "spacing_zyx_mm": [round(s, 4) for s in image.spacing],
                "foreground_ml": round(fg * image.voxel_ml, 3),
            }
        )
    image, label = first
    picture = overview.render_case(
        image.data if image.channels == 1 else image.data[0],
        image.spacing,
        truth=None if label is None else label.data,
        ct=task.kind == "ct",
    )
    shot = overview.save_png(picture, out / "screenshot.png")
    metrics = {
        "task": task.name,
        "kind": task.kind,
        "cases": rows,
        "mean_foreground_ml": float(np.mean([r["foreground_ml"] for r in rows])) if rows else 0.0,
        "seconds": round(time.perf_counter() - started, 2),
    }
    metrics_path = out / "metrics.json"
    tmp = metrics_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, metrics_path)
    return {"screenshot": str(shot), "metrics": str(metrics_path), **metrics}


__all__ = ["demo_task", "run_headless", "synthetic"]
