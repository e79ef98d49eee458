"""The Train tab's first minutes on the real heart task, as a newcomer meets them: press Start with the defaults,
shoot the window once the coarse locator is the run's model (the status says what Stop would leave), press Stop,
shoot what it left. Run under Xvfb with a screen of the size shot:

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python scripts/shot_train_heart.py --size 1366x768
"""

from __future__ import annotations

import argparse
import time

import napari
from screenshots import HEART, shot, wait_for

from napari_volseg import events as ev


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1366x768")
    parser.add_argument("--seconds", type=float, default=75.0, help="how long to train before Stop")
    args = parser.parse_args()
    if not (HEART / "dataset.json").is_file():
        raise SystemExit(f"no heart task at {HEART}")
    width, height = (int(v) for v in args.size.split("x"))
    from napari_volseg._napari.widgets import VolsegDock

    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window.set_geometry(0, 0, width, height)
    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg", area="right")
    data, train = dock.widgets["Data"], dock.widgets["Train"]
    data.open_task(HEART)
    wait_for(lambda: data.session.task is not None and len(viewer.layers) >= 2, 120)
    dock.show_tab("Train")
    worker = train.start()
    published = []
    worker.yielded.connect(
        lambda e: published.append(e) if isinstance(e, ev.CheckpointSaved) and e.kind == "best" else None
    )
    start = time.perf_counter()
    wait_for(lambda: published and time.perf_counter() - start > args.seconds, 600)
    shot(viewer, f"train-heart-{args.size}")
    train.stop()
    wait_for(lambda: train.worker is None, 300)
    shot(viewer, f"train-heart-stopped-{args.size}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
