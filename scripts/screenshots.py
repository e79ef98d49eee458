"""Regenerate the README's screenshots: the whole napari window at a laptop's 1366 x 768 and at 1920 x 1080, each tab
of the plugin's dock in use. Run under Xvfb with a screen of the size shot, e.g.

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python scripts/screenshots.py --size 1366x768
    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py --size 1920x1080

Data and Preprocess show the real MSD heart task when it is beside the checkout (else the synthetic CT task);
Train and Predict train on the synthetic CT task for a minute from the Train tab, Stop, and predict with the
stopped model; Classify trains the fast 3D digit classifier as long, Stops, and classifies a test digit; Annotate
ranks the unlabelled scans of a synthetic MRI task with a first model, accepts one and corrects a slice of the next
(``--only annotate`` retakes that shot alone). Nothing is staged by hand but the Annotate shot's first model (150
steps, trained before the window opens): every state is reached through the widgets.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
HEART = ROOT.parent / "shared" / "data" / "Task02_Heart"


def wait_for(predicate, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while not predicate() and time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shot(viewer, name: str) -> Path:
    wait_for(lambda: False, 1.0)  # let the canvas and the docks settle
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1366x768", help="window size WIDTHxHEIGHT (the Xvfb screen's)")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["annotate", "predict-heart"], help="retake this shot alone")
    parser.add_argument(
        "--heart-checkpoint",
        type=Path,
        help="also shoot predict-heart.png with this model (a name or a checkpoint; --only predict-heart: msd-heart)",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from napari_volseg._napari.widgets import VolsegDock

    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window.set_geometry(0, 0, width, height)
    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg", area="right")
    if args.only == "predict-heart":
        heart(viewer, dock, str(args.heart_checkpoint or "msd-heart"))
        viewer.close()
        return 0
    if args.only is None:
        segmentation_and_classify(viewer, dock, args)
    annotate(viewer, dock, args.size)
    viewer.close()
    return 0


def segmentation_and_classify(viewer, dock, args) -> None:
    """The Data, Preprocess, Train, Predict & evaluate and Classify shots (and predict-heart with a heart model)."""
    from napari_volseg.io.synthetic import synthetic_task_dir

    data, pre, train, predict, classify = (
        dock.widgets[t] for t in ("Data", "Preprocess", "Train", "Predict & evaluate", "Classify")
    )
    session = data.session

    data.open_task(HEART if (HEART / "dataset.json").is_file() else synthetic_task_dir("ct"))
    wait_for(lambda: session.task is not None and len(viewer.layers) >= 2, 120)
    shot(viewer, f"data-{args.size}")

    dock.show_tab("Preprocess")
    pre.preview()
    wait_for(lambda: any(layer.name.endswith("preprocessed") for layer in viewer.layers), 300)
    shot(viewer, f"preprocess-{args.size}")

    data.open_task(synthetic_task_dir("ct"))
    wait_for(lambda: session.task is not None and session.task.name.lower().startswith("synth"), 60)
    wait_for(lambda: len(viewer.layers) >= 2, 60)
    dock.show_tab("Train")
    train.form.fields["val_every"].set(1)  # a validation every 25 steps: Dice points on the chart within a minute
    train.start()
    start = time.perf_counter()
    wait_for(  # a Dice point on the chart if it comes in time
        lambda: (
            time.perf_counter() - start > args.train_seconds
            and (len(train.plot.dice) >= 1 or time.perf_counter() - start > 4 * args.train_seconds)
        ),
        600,
    )
    shot(viewer, f"train-{args.size}")
    train.stop()
    wait_for(lambda: train.worker is None, 300)

    dock.show_tab("Predict & evaluate")
    predict.predict("validation cases")
    wait_for(lambda: predict.worker is None, 600)
    predict.show_result(predict.table.item(predict.table.rowCount() - 1, 0).text())
    wait_for(lambda: any(layer.name.endswith("errors") for layer in viewer.layers), 60)
    viewer.reset_view()
    shot(viewer, f"predict-{args.size}")

    viewer.layers.clear()  # the classifier's 16^3 digits on a clean canvas, as a user would start it
    dock.show_tab("Classify")
    classify.start()
    start = time.perf_counter()
    wait_for(lambda: time.perf_counter() - start > args.train_seconds, 600)
    classify.stop()  # the epoch under way is scored and saved, and becomes the classifier
    wait_for(lambda: classify.worker is None and classify.classifier is not None, 600)
    classify.sample.setValue(7)
    classify.show_sample()
    wait_for(lambda: classify.result.text() != "", 120)
    viewer.reset_view()
    dock.tabs.currentWidget().ensureWidgetVisible(classify.table)  # the probability bars, scrolled to if need be
    shot(viewer, f"classify-{args.size}")
    if args.heart_checkpoint:
        heart(viewer, dock, str(args.heart_checkpoint))


def heart(viewer, dock, model: str) -> None:
    """predict-heart.png: the real heart task, ``model`` (a name such as msd-heart, or a checkpoint) chosen in the
    Predict tab, its three seed-0 cases (msd-heart's held-out ones) predicted and the first one shown."""
    if not (HEART / "dataset.json").is_file():
        return
    data, predict = dock.widgets["Data"], dock.widgets["Predict & evaluate"]
    session = data.session
    data.open_task(HEART)
    wait_for(lambda: session.task is not None and session.task.root == HEART and len(viewer.layers) >= 2, 120)
    wait_for(lambda: not session.busy_loading(), 120)
    dock.show_tab("Predict & evaluate")
    predict.chooser.select(model) or dock.widgets["Train"].load_checkpoint(Path(model))
    predict.predict("validation cases")
    wait_for(lambda: predict.worker is None, 900)
    predict.show_result(predict.table.item(0, 0).text())
    wait_for(lambda: any(layer.name.endswith("errors") for layer in viewer.layers), 60)
    viewer.reset_view()
    shot(viewer, "predict-heart")


def annotate(viewer, dock, size: str) -> None:
    """The Annotate tab mid-correction on a synthetic MRI task with five unlabelled scans: a first model (150 steps
    of fast-cpu), the unlabelled scans ranked, one accepted, the next (most uncertain) open with one slice corrected
    as a careful user would paint it."""
    import tempfile

    from napari_volseg.config import load_preset
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.io import decathlon, synthetic

    root = synthetic.write_task(Path(tempfile.mkdtemp()) / "Task97_Annotate", cases=6, kind="mri", test_cases=5)
    model = root / "models" / "v001.safetensors"
    preset = load_preset("fast-cpu")
    preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, epochs=6, minutes=None))  # 150 steps
    for _ in Trainer(decathlon.load_task(root), preset, model).run():
        pass
    data, annotate = dock.widgets["Data"], dock.widgets["Annotate"]
    session = data.session
    viewer.layers.clear()
    data.open_task(root)
    wait_for(
        lambda: session.task is not None and Path(session.task.root).resolve() == root.resolve() and viewer.layers, 120
    )
    session.set_checkpoint(model)
    dock.show_tab("Annotate")
    annotate.rank()
    wait_for(lambda: annotate.worker is None and annotate.case_id is not None, 600)

    def truth(case_id: str):  # synthetic case i is drawn from seed i
        return synthetic.mri_case(int(case_id[-3:]) - 1)[1]

    first = annotate.case_id
    viewer.layers[f"{first} annotation"].data = truth(first)
    annotate.accept()
    wait_for(lambda: annotate.writer is None and not session.busy_loading() and annotate.cases.rowCount() == 4, 120)
    annotate.cases.selectRow(0)
    annotate.predict(annotate._selected_case())
    wait_for(lambda: annotate.worker is None and annotate.case_id != first, 600)
    layer = viewer.layers[f"{annotate.case_id} annotation"]
    z = annotate.current_slice()
    corrected = layer.data.copy()
    corrected[z] = truth(annotate.case_id)[z]  # this slice corrected so far
    layer.data = corrected
    viewer.reset_view()
    shot(viewer, f"annotate-{size}")


if __name__ == "__main__":
    raise SystemExit(main())
