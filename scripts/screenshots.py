"""Regenerate the README's screenshots under Xvfb: `xvfb-run -a .venv/bin/python scripts/screenshots.py`.

Each shot is a full napari window (show=True) after the plugin opened a case; nothing is staged by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def settle(viewer, rounds: int = 30) -> None:
    viewer.window._qt_viewer.canvas  # noqa: B018 - make sure the canvas exists
    for _ in range(rounds):
        QApplication.processEvents()
    for notification in list(viewer.window._qt_window.findChildren(object)):
        if notification.__class__.__name__ == "NapariQtNotification":
            notification.close()
    for _ in range(5):
        QApplication.processEvents()


def shot(viewer, name: str) -> Path:
    settle(viewer)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)
    return path


def synthetic_ct() -> None:
    from napari_volseg._napari.demo import open_demo

    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window._qt_window.resize(1400, 900)
    open_demo(viewer, kind="ct")
    shot(viewer, "synthetic-ct")
    viewer.dims.ndisplay = 2
    viewer.dims.order = (1, 0, 2)  # coronal: the 5 mm slices show at their true aspect
    viewer.dims.set_point(1, viewer.layers[1].data_to_world([0, 70, 0])[1])
    shot(viewer, "synthetic-ct-coronal")
    viewer.close()


def wait_for(predicate, seconds: float) -> None:
    import time

    end = time.perf_counter() + seconds
    while not predicate() and time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def workflow() -> None:
    """Train from the Train widget on the synthetic task, then predict the validation cases."""
    from napari_volseg._napari.demo import open_demo

    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window._qt_window.resize(1500, 1000)
    widgets = open_demo(viewer, kind="ct")
    train, predict = widgets["Train"], widgets["Predict & evaluate"]
    train.minutes.setValue(2.0)
    train.start()
    wait_for(lambda: len(train.plot.loss) > 20, 300)
    shot(viewer, "train-widget")
    wait_for(lambda: train.worker is None, 600)
    predict.predict("validation cases")
    wait_for(lambda: predict.worker is None, 600)
    viewer.reset_view()
    shot(viewer, "predict-synthetic")
    viewer.close()


def heart(checkpoint: str = "") -> None:
    """A real MSD heart case with a prediction from a checkpoint trained by bench/accuracy.py."""
    import os

    from napari_volseg._napari.demo import open_demo

    checkpoint = checkpoint or os.environ.get("VOLSEG_HEART_CKPT", "")
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "Task02_Heart"
    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window._qt_window.resize(1500, 1000)
    widgets = open_demo(viewer, data=data)
    widgets["Data"].open_case("la_007")
    widgets["Train"].load_checkpoint(checkpoint)
    predict = widgets["Predict & evaluate"]
    predict.predict("validation cases")
    wait_for(lambda: predict.worker is None, 600)
    predict.show_result(predict.table.item(0, 0).text())
    viewer.reset_view()
    shot(viewer, "predict-heart")
    viewer.close()


def annotate() -> None:
    """The Annotate widget mid-correction on the synthetic MRI task: a first model (150 steps of fast-cpu),
    the unlabelled cases ranked, one accepted, the next (most uncertain) open with one slice corrected."""
    import tempfile

    from napari_volseg._napari.widgets import AnnotateWidget, DataWidget
    from napari_volseg.engine.config import load_preset
    from napari_volseg.engine.train import Trainer
    from napari_volseg.io import decathlon, synthetic

    root = synthetic.write_task(Path(tempfile.mkdtemp()) / "Task97_Annotate", cases=6, kind="mri", test_cases=5)
    task = decathlon.load_task(root)
    preset = load_preset("fast-cpu").with_overrides(epochs=6, minutes=0.0)  # 150 steps, whatever the load
    for _ in Trainer(task, preset, root / "models" / "v001.safetensors").run():
        pass
    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window._qt_window.resize(1500, 1000)
    data, annotate = DataWidget(viewer), AnnotateWidget(viewer)
    viewer.window.add_dock_widget(data, name="Data", area="right")
    viewer.window.add_dock_widget(annotate, name="Annotate", area="right", tabify=True)
    data.open_task(root)
    annotate.session.set_checkpoint(root / "models" / "v001.safetensors")
    annotate.rank()
    wait_for(lambda: annotate.worker is None and annotate.case_id is not None, 600)

    def truth(case_id: str):  # synthetic case i is drawn from seed i: what a careful user would paint
        return synthetic.mri_case(int(case_id[-3:]) - 1)[1]

    first = annotate.case_id
    viewer.layers[f"{first} annotation"].data = truth(first)
    annotate.accept()
    annotate.predict(annotate._selected_case())
    wait_for(lambda: annotate.worker is None and annotate.case_id != first, 600)
    layer = viewer.layers[f"{annotate.case_id} annotation"]
    z = annotate.current_slice()
    corrected = layer.data.copy()
    corrected[z] = truth(annotate.case_id)[z]  # this slice corrected so far
    layer.data = corrected
    viewer.reset_view()
    shot(viewer, "annotate-widget")
    viewer.close()


SHOTS = {"synthetic-ct": synthetic_ct, "workflow": workflow, "heart": heart, "annotate": annotate}

if __name__ == "__main__":
    for name in sys.argv[1:] or SHOTS:
        SHOTS[name]()
