"""GUI latency while training runs from the Train widget: how late does napari's event loop run?

A QTimer fires every 10 ms; each firing records how much later than due it ran. Training (the
fast-cpu preset on the synthetic CT task) runs in the widget's worker meanwhile. Needs a display:
``xvfb-run -a python bench/gui_latency.py [--seconds 60]``. Prints the stalls, ends with one JSON line.
Goal: max <= 100 ms, p99 <= 30 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    os.environ.setdefault("VOLSEG_CACHE", tempfile.mkdtemp(prefix="volseg-gui-"))
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_volseg._napari.demo import open_demo

    viewer = napari.Viewer(show=True)
    widgets = open_demo(viewer)
    train = widgets["Train"]
    train.minutes.setValue(args.seconds / 60.0 + 1)
    period = 0.010
    lateness: list[float] = []
    state = {"due": None}

    def tick():
        now = time.perf_counter()
        if state["due"] is not None and train.worker is not None and train.plot.loss:
            lateness.append(max(0.0, now - state["due"]))
        state["due"] = now + period

    timer = QTimer()
    timer.setInterval(int(period * 1000))
    timer.timeout.connect(tick)
    timer.start()
    train.start()
    end = time.perf_counter() + args.seconds + 30
    while time.perf_counter() < end and (len(lateness) * period < args.seconds):
        QApplication.processEvents()
        time.sleep(0.001)
    train.stop()
    while train.worker is not None and time.perf_counter() < end + 60:
        QApplication.processEvents()
        time.sleep(0.01)
    timer.stop()
    steps = len(train.plot.loss)
    viewer.close()
    ms = np.array(lateness) * 1000 if lateness else np.zeros(1)
    print(
        f"samples {len(ms)} while training ({steps} steps): max stall {ms.max():.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
        f"median {np.median(ms):.1f} ms"
    )
    print(
        json.dumps(
            {
                "bench": "gui_latency",
                "samples": int(len(ms)),
                "train_steps": steps,
                "max_ms": round(float(ms.max()), 1),
                "p99_ms": round(float(np.percentile(ms, 99)), 1),
                "median_ms": round(float(np.median(ms)), 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
