"""The dock widgets in a real viewer (pytest-qt + make_napari_viewer, under Xvfb)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import cascade_preset, quick_preset, recording_trainer, scripted_trainer

from napari_volseg import events as ev
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import naming

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def widgets(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.widgets import DataWidget, PredictWidget, TrainWidget

    viewer = make_napari_viewer()
    return viewer, DataWidget(viewer), TrainWidget(viewer), PredictWidget(viewer)


def open_task(qtbot, data, folder, cases: int = 6):
    data.open_task(folder)
    assert data.session.busy_loading()  # read in a worker
    qtbot.waitUntil(lambda: not data.session.busy_loading(), timeout=60_000)
    # loading ends once the first case's last layer is in (layers arrive one per event-loop turn after the read)
    assert data.table.rowCount() == cases and len(data.viewer.layers) == 2


def docked(make_napari_viewer, show: bool = False):
    """A viewer with the tabbed dock docked in it, as Plugins → VolSeg → All steps does."""
    from napari_volseg._napari.widgets import VolsegDock

    viewer = make_napari_viewer(show=show)
    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg")
    return viewer, dock


def endless_job():
    """A worker that runs until stopped, as a long prediction does."""
    import time

    from napari_volseg._napari.notify import background

    @background
    def endless():
        while True:
            time.sleep(0.01)
            yield 1

    return endless()


def until_stopped(last=None):
    """A scripted run's events: steps until Stop, then a Finished naming ``last`` as its last weights (no validation)."""
    import time

    from napari_volseg import events as ev

    def script(trainer):
        yield ev.Started(10_000, 1, "cpu", ["a"], ["b"], 0, 2, (16, 16, 16), "")
        step = 0
        while not trainer.stopping:
            step += 1
            time.sleep(0.02)
            yield ev.Step(step, 0, 1.0 / step, 1e-3, 0.1, "")
        yield ev.Finished(step, float("nan"), None, last, True, 1.0)

    return script


def use_quick_settings(train, **changes):
    """The session's fast-cpu preset shrunk for tests (the Train form shows it)."""
    q = quick_preset(**changes)
    session = train.session
    session.presets["fast-cpu"] = q
    session.preset = q
    session.preset_changed.emit(q)
    return q


def field(form, name):
    return form.fields[name].get()


def test_train_widget_defaults_equal_the_preset_and_config(widgets):
    from napari_volseg.config import TrainConfig, load_preset

    _, _, train, _ = widgets
    preset = load_preset("fast-cpu")
    assert train.current_preset() == preset
    assert field(train.form, "epochs") == preset.train.epochs
    assert field(train.form, "lr") == pytest.approx(preset.train.lr)
    assert field(train.form, "patch_size") == preset.train.patch_size == TrainConfig().patch_size
    train.preset.setCurrentText("seed-exp2-heart-dice")
    assert train.current_preset() == load_preset("seed-exp2-heart-dice")
    assert train.model.currentText() == "seed-net2" and field(train.form, "loss") == "dice"


def test_every_train_and_plan_setting_has_a_field_and_expert_ones_start_folded(widgets):
    import dataclasses

    from napari_volseg._napari.widgets import PreprocessWidget
    from napari_volseg.config import PlanSettings, TrainConfig

    viewer, _, train, _ = widgets
    pre = PreprocessWidget(viewer)
    assert set(train.form.fields) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(pre.form.fields) == {f.name for f in dataclasses.fields(PlanSettings)}
    assert not train.form.expander.isExpanded() and not pre.form.expander.isExpanded()
    assert "batch_size" not in [w.name for w in train.form.basic]  # an expert field sits under Advanced


def test_the_plan_set_in_preprocess_is_the_plan_train_trains_with(widgets, qtbot, tiny_ct_task, monkeypatch):
    """Issue 10 bug 1: the Train widget used to re-plan from its own preset, ignoring Preprocess."""
    from napari_volseg._napari.widgets import PreprocessWidget
    from napari_volseg.engine import trainer as train_module

    viewer, data, train, _ = widgets
    pre = PreprocessWidget(viewer)
    open_task(qtbot, data, tiny_ct_task)
    pre.form.fields["crop"].set(False)
    pre.form.fields["spacing"].set((4.0, 3.0, 3.0))
    pre.form.fields["max_voxels"].set(None)
    pre.form.changed.emit()
    assert "set in Preprocess" in train.plan_label.text()

    captured = {}
    monkeypatch.setattr(train_module, "Trainer", recording_trainer(captured))
    train.start()
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)
    assert captured["plan"] == pre.settings()
    assert captured["plan"].crop is False and captured["plan"].spacing == (4.0, 3.0, 3.0)
    assert captured["plan"].max_voxels is None


def test_a_cascade_chart_keeps_the_locator_curve_and_stop_keeps_its_room(widgets, qtbot, tiny_ct_task, monkeypatch):
    """Issue 26 item 8: the main network's steps continue the locator's curve after a marked line (the locator's
    curve vanished when stage 2 started), and after Stop the settings stay folded (they unfolded and squeezed the
    chart at 1366 x 768)."""
    from napari_volseg import events as ev
    from napari_volseg.engine import trainer as train_module

    def cascade(trainer):
        yield ev.Started(3, 1, "cpu", ["a"], ["b"], 0, 2, (16, 16, 16), "locator")
        for step in (1, 2, 3):
            yield ev.Step(step, 0, 1.0 / step, 1e-3, 0.1, "locator")
        yield ev.Validated(3, 0, {"b": 0.5}, 0.5, 0.1, "locator")
        yield ev.Started(2, 1, "cpu", ["a"], ["b"], 0, 2, (16, 16, 16), "")
        for step in (1, 2):
            yield ev.Step(step, 0, 0.2 / step, 1e-3, 0.1, "")
        yield ev.Validated(2, 0, {"b": 0.8}, 0.8, 0.1, "")

    viewer, data, train, _ = widgets
    open_task(qtbot, data, tiny_ct_task)
    monkeypatch.setattr(train_module, "Trainer", scripted_trainer(cascade))
    train.start()
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)
    assert [x for x, _ in train.plot.loss] == [1, 2, 3, 4, 5]  # the locator's 3 steps, then the main net's 2
    assert train.plot.dice == [(3, 0.5), (5, 0.8)]
    assert [line.value() for line in train.plot.marks] == [3]
    assert train.plot.plot.titleLabel.text == "cascade stage 2 of 2: main network"
    assert not train.settings.isExpanded()  # folded, after the run as during it


def test_full_flow_open_train_predict_table(widgets, qtbot, train_ct_task, tmp_path, monkeypatch):
    from napari_volseg import metrics
    from napari_volseg.io import nifti

    viewer, data, train, predict = widgets
    open_task(qtbot, data, train_ct_task)
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]
    np.testing.assert_allclose(viewer.layers[0].scale, (5.0, 1.6, 1.6), rtol=1e-6)

    use_quick_settings(train, epochs=2)  # 20 steps, one validation
    worker = train.start(out=tmp_path / "gui.safetensors")
    assert worker is not None and not train.start_button.isEnabled()
    qtbot.waitUntil(lambda: train.worker is None, timeout=600_000)
    assert len(train.plot.loss) == 20 and train.plot.dice
    assert predict.session.checkpoint == tmp_path / "gui.safetensors"
    assert "best validated weights" in train.status.text() and "nan" not in train.status.text()

    shown_texts = []  # every status line, in order (independent of the order Qt calls the yielded slots in)
    set_text = predict.status.setText
    predict.status.setText = lambda text: (shown_texts.append(text), set_text(text))[1]
    predict.predict("validation cases")
    qtbot.waitUntil(lambda: predict.worker is None, timeout=600_000)
    val_ids = [c.id for c in predict.session.split.val]
    expected = [f"predicting {i + 1} / {len(val_ids)}: {case_id}…" for i, case_id in enumerate(val_ids)]
    assert [t for t in shown_texts if t.startswith("predicting ")] == expected  # each case named while predicted
    assert shown_texts[-1] == f"predicted {len(val_ids)} case(s); click a row to open one"
    assert predict.table.rowCount() == len(val_ids) >= 1
    # the table's Dice equals metrics.dice recomputed on the two layers
    qtbot.waitUntil(lambda: not predict.session.busy_loading(), timeout=30_000)  # the last result's layers
    from napari_volseg._napari.widgets import predict as predict_module

    counted = []  # whether each result layer is set while the session counts it as loading
    set_labels = predict_module.set_labels
    monkeypatch.setattr(
        predict_module,
        "set_labels",
        lambda *a, **k: (counted.append(predict.session.busy_loading()), set_labels(*a, **k))[1],
    )
    for row in range(predict.table.rowCount()):
        case_id = predict.table.item(row, 0).text()
        predict._row_clicked(row, 0)
        # the result layers come one per event-loop turn, then the other case's result layers go: all of it counts
        # as loading, so a script (or this test) that waits for busy_loading() to end finds every layer in place
        assert predict.session.busy_loading()
        qtbot.waitUntil(lambda: not predict.session.busy_loading(), timeout=30_000)
        assert {layer.metadata["volseg"]["case"] for layer in viewer.layers} == {case_id}
        assert counted and all(counted)  # the prediction and the error layer alike
        counted.clear()
        pred_layer = viewer.layers[f"{case_id} prediction"]
        truth_layer = viewer.layers[f"{case_id} ground truth"]
        recomputed, _ = metrics.dice(np.asarray(pred_layer.data), np.asarray(truth_layer.data))
        row_now = [r for r in range(predict.table.rowCount()) if predict.table.item(r, 0).text() == case_id][0]
        assert float(predict.table.item(row_now, 1).text()) == pytest.approx(recomputed, abs=1e-4)
        assert [layer.name for layer in viewer.layers] == [
            f"{case_id}",
            f"{case_id} ground truth",
            f"{case_id} prediction",
            f"{case_id} errors",
        ]
        assert not np.allclose(pred_layer.colormap.map(1), truth_layer.colormap.map(1))  # told apart by colour
    assert predict.mean_label.text().startswith(f"mean Dice over {len(val_ids)} case(s)")

    csv = predict.export_csv(tmp_path / "table.csv")
    assert len(csv.read_text().strip().splitlines()) == 1 + len(val_ids)
    saved = predict.save_predictions(tmp_path / "preds")
    for path in saved:
        case = data.session.task.case(path.name.replace(".nii.gz", ""))
        src = nifti.load(case.image_path)
        out = nifti.load(path, label=True)
        assert out.data.shape == src.data.shape and np.array_equal(out.affine, src.affine)

    # re-opening the task keeps its results; another task has its own (empty) table
    open_task(qtbot, data, train_ct_task)
    assert predict.table.rowCount() == len(val_ids)


def test_stop_before_validation_makes_the_last_weights_the_model(widgets, qtbot, train_ct_task, tmp_path):
    from napari_volseg.engine import checkpoint as ckpt

    viewer, data, train, predict = widgets
    open_task(qtbot, data, train_ct_task)
    use_quick_settings(train, epochs=100)
    train.start(out=tmp_path / "stop.safetensors")
    assert not train.settings.isExpanded()  # the settings fold away while the chart runs
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 3, timeout=600_000)
    train.stop_button.click()
    qtbot.waitUntil(lambda: train.worker is None, timeout=30_000)
    assert train.start_button.isEnabled() and not train.stop_button.isEnabled()
    assert not train.settings.isExpanded()  # the chart keeps its room after the run (unfolding squeezed its axes)
    last = naming.last_path(tmp_path / "stop.safetensors")
    status = train.status.text()
    assert status.startswith("stopped at step") and "nan" not in status
    assert "the last weights" in status and last.name in status and str(last.parent) in status
    assert train.session.checkpoint == last
    assert predict.chooser.combo.currentText().startswith(last.stem)  # Predict offers the stopped model
    loaded = ckpt.load(last)
    assert loaded.step <= len(train.plot.loss) + 1
    loaded.build_model()
    assert len(viewer.layers) == 2  # nothing lost
    from napari_volseg._napari.widgets import TrainWidget

    assert TrainWidget(viewer).status.text() == f"model: {last.name} in {last.parent}"  # a Train dock opened later


def test_a_failing_worker_becomes_one_notification_and_idle(widgets, qtbot, train_ct_task, tmp_path, monkeypatch):
    from napari_volseg._napari.widgets import train as train_module
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.errors import VolsegError

    shown = []
    monkeypatch.setattr(train_module, "notify_error", lambda m: shown.append(str(m)))

    def broken(self):
        raise VolsegError("the disk is full")
        yield  # pragma: no cover

    monkeypatch.setattr(Trainer, "_run", broken)
    viewer, data, train, _ = widgets
    open_task(qtbot, data, train_ct_task)
    train.start(out=tmp_path / "x.safetensors")
    qtbot.waitUntil(lambda: train.worker is None, timeout=30_000)
    assert shown == ["the disk is full"] and train.start_button.isEnabled()
    assert train.status.text() == "failed: the disk is full"


def test_bad_checkpoint_missing_task_and_empty_export_are_notifications(widgets, tmp_path, monkeypatch):
    from napari_volseg._napari.widgets import predict as predict_module
    from napari_volseg._napari.widgets import train as train_module

    shown = []
    monkeypatch.setattr(train_module, "notify_error", lambda m: shown.append(str(m)))
    monkeypatch.setattr(predict_module, "notify_error", lambda m: shown.append(str(m)))
    _, _, train, predict = widgets
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    assert train.load_checkpoint(tmp_path / "bad.safetensors") is False
    assert train.start() is None
    assert predict.predict() is None
    assert predict.export_csv(tmp_path / "empty.csv") is None and not (tmp_path / "empty.csv").exists()
    assert shown[-1].startswith("nothing to export yet")
    assert len(shown) == 4 and all("\n" not in s for s in shown)


def test_widgets_import_and_draw_under_pyqt6():
    code = (
        "import os; os.environ['QT_API']='pyqt6'; os.environ['QT_QPA_PLATFORM']='offscreen';"
        "from qtpy import API_NAME; assert API_NAME == 'PyQt6', API_NAME;"
        "from qtpy.QtWidgets import QApplication; app = QApplication([]);"
        "import napari_volseg._napari.widgets as w; from napari_volseg._napari.widgets.plot import TrainingPlot;"
        "p = TrainingPlot(); p.apply_theme('dark'); p.add_loss(1, 0.5); p.add_dice(1, 0.7); p.resize(300, 150);"
        "p.grab(); print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "QT_API"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_training_plot_has_axes_legend_and_separate_scales(qtbot):
    from napari_volseg._napari.widgets.plot import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    for step in range(1, 30):
        plot.add_loss(step, 5.0 / step)
    plot.add_dice(10, 0.4)
    plot.add_dice(20, 0.7)
    item = plot.plot
    assert item.getAxis("left").labelText == "training loss" and item.getAxis("right").labelText == "validation Dice"
    assert item.getAxis("bottom").labelText == "step"
    assert [label.text for _, label in plot.legend.items] == ["training loss", "validation Dice"]
    assert plot.dice_box.viewRange()[1] == pytest.approx([0.0, 1.0], abs=0.05)  # Dice on its own 0..1 axis
    assert plot.loss_curve.getViewBox() is item.vb and plot.dice_curve.getViewBox() is plot.dice_box


def test_preprocess_widget_defaults_preview_and_cache(widgets, qtbot, train_ct_task):
    from napari_volseg._napari.widgets import PreprocessWidget
    from napari_volseg.config import load_preset

    viewer, data, _, _ = widgets
    pre = PreprocessWidget(viewer)
    assert pre.settings() == load_preset("fast-cpu").plan
    open_task(qtbot, data, train_ct_task)
    pre.preview()
    qtbot.waitUntil(lambda: "spleen_001 preprocessed" in viewer.layers, timeout=60_000)
    layer = viewer.layers["spleen_001 preprocessed"]
    assert layer.data.ndim == 3 and layer.data.dtype.name == "float32"
    assert "as the network sees it" in pre.status.text()  # a small task: no cascade, no locator grid
    pre.run()
    qtbot.waitUntil(lambda: pre.worker is None, timeout=60_000)
    assert "6 preprocessed, 0 already cached" in pre.status.text()


def test_choosing_a_fixed_shape_starts_from_one_and_a_preset_change_says_what_it_replaces(widgets, qtbot, monkeypatch):
    """'resample: shape' with no shape set raised SettingsError inside the form's slot (a traceback); it now starts
    from 128³. Choosing another preset afterwards replaces the edited plan, and a notification says so."""
    from napari_volseg._napari import state
    from napari_volseg._napari.widgets import PreprocessWidget, TrainWidget

    viewer, _, _, _ = widgets
    pre, train = PreprocessWidget(viewer), TrainWidget(viewer)
    pre.form.fields["resample"].set("shape")
    pre.form._emit()  # as a user's choice does
    assert pre.settings().shape == (128, 128, 128) and pre.session.preset.plan.resample == "shape"
    assert "resized to 128 × 128 × 128" in pre.status.text()
    said = []
    monkeypatch.setattr("napari.utils.notifications.show_info", said.append)
    train.preset.setCurrentText("seed-exp1-heart-ce")
    assert said == ["preset seed-exp1-heart-ce: its own plan and training settings replace the plan set in Preprocess"]
    train.preset.setCurrentText("fast-cpu")  # nothing edited since: nothing to say
    assert len(said) == 1 and pre.settings() == pre.session.preset.plan == state.Session().presets["fast-cpu"].plan


def test_preview_says_when_it_shows_the_cascade_locator_grid(widgets, qtbot, train_ct_task):
    import dataclasses

    from napari_volseg._napari.widgets import PreprocessWidget

    viewer, data, _, _ = widgets
    pre = PreprocessWidget(viewer)
    open_task(qtbot, data, train_ct_task)
    settings = dataclasses.replace(pre.settings(), max_voxels=20_000, locator_voxels=5_000, cascade=True)
    pre.form.show_values(settings)
    pre.preview()
    qtbot.waitUntil(lambda: "spleen_001 preprocessed" in viewer.layers, timeout=60_000)
    assert "cascade's coarse locator grid (stage 1 of 2)" in pre.status.text()
    pre.run()  # what it caches is the locator's grid: the voxel budget applies later, to the regions of interest
    qtbot.waitUntil(lambda: pre.worker is None, timeout=60_000)
    assert pre.status.text().startswith("cascade stage 1 of 2, the locator's coarse grid: plan ")
    assert "cut and cached when training starts" in pre.status.text()


def test_closing_the_viewer_stops_training(make_napari_viewer, qtbot, train_ct_task, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))

    viewer, dock = docked(make_napari_viewer)
    data, train = dock.widgets["Data"], dock.widgets["Train"]
    open_task(qtbot, data, train_ct_task)
    use_quick_settings(train, epochs=100)
    worker = train.start(out=tmp_path / "closing.safetensors")
    trainer = train.trainer
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 2, timeout=600_000)
    viewer.close()  # the dock's widgets are destroyed with the window: their workers stop
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)
    assert trainer.stopping


def test_seed_report_presets_train_on_the_cli_split_in_the_gui(widgets, qtbot, tmp_path, monkeypatch):
    """One function decides the split: the Train widget, the session (Data table, Predict's
    validation cases) and `volseg train` agree, also for the seed report's fixed split."""
    from conftest import TINY_CT

    from napari_volseg import cli
    from napari_volseg import events as ev
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.io import synthetic

    trainers = []

    def no_training(self):
        trainers.append(self)
        return ev.Finished(step=0, best_dice=float("nan"), best_path=None, last_path=None, stopped=True, seconds=0)
        yield  # pragma: no cover

    monkeypatch.setattr(Trainer, "_run", no_training)
    task_dir = synthetic.write_task(tmp_path / "Task02_Heart", cases=20, kind="mri", spec=TINY_CT)
    viewer, data, train, predict = widgets
    open_task(qtbot, data, task_dir, cases=20)
    train.preset.setCurrentText("seed-exp2-heart-dice")
    train.start(out=tmp_path / "gui.safetensors")
    gui = train.trainer
    qtbot.waitUntil(lambda: train.worker is None, timeout=30_000)
    assert (
        cli.main(["train", "--data", str(task_dir), "--preset", "seed-exp2-heart-dice", "--out", str(tmp_path / "c")])
        == 0
    )
    [command_line] = [t for t in trainers if t is not gui]
    seed_report = [c.id for c in data.session.task.cases[16:20]]  # the report's 16/4 split in dataset.json order
    assert [c.id for c in gui.split.val] == [c.id for c in command_line.split.val] == seed_report
    assert [c.id for c in predict.session.split.val] == seed_report
    assert predict._cases("validation cases") == seed_report
    shown = {data.table.item(r, 0).text(): data.table.item(r, 3).text() for r in range(data.table.rowCount())}
    assert sorted(k for k, v in shown.items() if v == "val") == sorted(seed_report)


def test_mirror_tta_follows_the_checkpoints_preset(widgets):
    from pathlib import Path

    _, _, train, predict = widgets
    data = Path(__file__).parents[1] / "engine" / "data"
    assert train.load_checkpoint(data / "v0.1-cascade.safetensors")  # trained mirrored along x, TTA on
    assert predict.tta.isEnabled() and predict.tta.isChecked()
    assert train.load_checkpoint(data / "v0.1-no-preset.safetensors")  # no mirroring: TTA would only hurt
    assert not predict.tta.isEnabled() and not predict.tta.isChecked()


def test_the_table_keeps_one_models_results_and_sets_its_training_cases_apart(widgets, qtbot, tiny_ct_task):
    """Predicting with another model clears the old model's rows (one mean over two models means nothing); a case
    the model trained on is starred, and the mean over the cases it never saw is given apart."""
    from napari_volseg.evaluate import CaseResult, mean_text
    from napari_volseg.metrics import ClassScore

    viewer, data, _, predict = widgets
    open_task(qtbot, data, tiny_ct_task)
    session = predict.session
    grid = np.zeros((2, 2, 2), np.uint8)

    def result(case, dice, model, trained=False):
        score = ClassScore(label=1, dice=dice, hd95=1.0, empty=False, pred_ml=1.0, true_ml=1.0)
        return CaseResult(case, grid, None, [score], trained_on=trained, model=model)

    cases = session.case_ids()
    session.add_result(result(cases[0], 0.05, "stopped.last.safetensors"))
    assert predict.table.rowCount() == 1
    assert session.results_for_model("msd-heart") is True and predict.table.rowCount() == 0
    session.add_result(result(cases[0], 0.9, "msd-heart", trained=True))
    session.add_result(result(cases[1], 0.8, "msd-heart"))
    assert session.results_for_model("msd-heart") is False
    names = sorted(predict.table.item(r, 0).text() for r in range(predict.table.rowCount()))
    assert names == sorted([f"{cases[0]} *", cases[1]])
    assert predict.mean_label.text() == (
        "mean Dice over 1 case(s) it never trained on: 0.8000; over its 1 training case(s) (*): 0.9000"
    )
    assert predict.minimumSizeHint().width() <= 420  # the long line wraps: the tab still fits a 430 px dock
    predict.resize(430, 700)  # every column inside the table of a 430 px dock: none cut, no sideways scrolling
    predict.show()
    qtbot.wait(50)
    header = predict.table.horizontalHeader()
    assert header.length() <= predict.table.viewport().width()
    assert all(header.sectionSize(c) >= 36 for c in range(predict.table.columnCount()))
    assert mean_text([result("a", 0.8, "m"), result("b", 0.6, "m")]) == "mean Dice over 2 case(s): 0.7000"
    assert mean_text([]) == ""
    assert mean_text([result("a", 0.9, "m", trained=True)]) == "mean Dice over its 1 training case(s) (*): 0.9000"


def test_a_two_class_table_shows_every_dice_whole_in_a_laptop_dock(widgets, qtbot, tiny_ct_task, monkeypatch):
    """Seven columns (the hippocampus: two classes) do not fit a 430 px dock: each figure keeps the width it needs and
    the table scrolls sideways, the Dice columns first and in view (shared, every column got 44 px: "0...."); widened,
    the figures share the width again with no sideways scrolling."""
    from napari_volseg._napari.widgets.common import needed_width
    from napari_volseg.evaluate import CaseResult
    from napari_volseg.metrics import ClassScore

    viewer, data, _, predict = widgets
    open_task(qtbot, data, tiny_ct_task)
    session = predict.session
    monkeypatch.setattr(session, "label_names", lambda: {0: "background", 1: "Anterior", 2: "Posterior"})
    grid = np.zeros((2, 2, 2), np.uint8)
    for case, dice in zip(session.case_ids()[:2], (0.8934, 0.9012), strict=True):
        scores = [ClassScore(label=k, dice=dice, hd95=12.25, empty=False, pred_ml=3.4, true_ml=3.5) for k in (1, 2)]
        session.add_result(CaseResult(f"hippocampus_{case}", grid, None, scores, trained_on=True, model="m"))
    predict.resize(430, 700)
    predict.show()
    qtbot.wait(50)
    table, header = predict.table, predict.table.horizontalHeader()
    assert table.columnCount() == 7
    for column in range(table.columnCount()):  # no figure and no header word cut
        assert header.sectionSize(column) >= needed_width(table, column) >= table.sizeHintForColumn(column), column
    dice_end = header.sectionPosition(2) + header.sectionSize(2)
    assert dice_end <= table.viewport().width()  # the case and both Dice columns in view without scrolling
    predict.resize(1000, 700)
    qtbot.wait(50)
    assert header.length() <= table.viewport().width()  # room for all: shared again, nothing to scroll
    assert all(header.sectionSize(c) >= needed_width(table, c) for c in range(table.columnCount()))
    assert header.length() >= table.viewport().width() - 2  # and the whole width used


def test_the_case_table_fits_a_laptop_dock_without_sideways_scrolling(widgets, qtbot, tiny_ct_task):
    """The Data table's columns share a 430 px dock (sized to contents, its split column sat behind a sideways
    scroll bar at 1366 x 768), and every column still shows its cells whole."""
    from napari_volseg._napari.widgets.common import needed_width

    _, data, _, _ = widgets
    open_task(qtbot, data, tiny_ct_task)
    data.resize(430, 700)
    data.show()
    qtbot.wait(50)
    table, header = data.table, data.table.horizontalHeader()
    assert header.length() <= table.viewport().width()
    assert all(header.sectionSize(c) >= needed_width(table, c) for c in range(table.columnCount()))


def test_a_models_own_held_out_cases_are_one_scope(widgets, qtbot, tiny_ct_task, tiny_checkpoint, monkeypatch):
    """'validation cases' come from the training settings' split, which a pretrained model's training cases overlap
    (msd-hippocampus: 20 of its 40 were starred); 'cases it never trained on' are the labelled cases its checkpoint
    does not list, and a model that lists none says so instead of predicting everything under that name."""
    from napari_volseg._napari.widgets import predict as predict_module
    from napari_volseg.engine.provenance import Provenance
    from napari_volseg.io.scopes import NEVER_TRAINED_ON
    from napari_volseg.zoo import backend

    _, data, _, predict = widgets
    open_task(qtbot, data, tiny_ct_task)
    predict.session.set_checkpoint(tiny_checkpoint)
    labelled = [c.id for c in predict.session.task.cases]
    monkeypatch.setattr(backend, "provenance", lambda model: Provenance("m", "", frozenset(labelled[:4])))
    assert NEVER_TRAINED_ON in [predict.scope.itemText(i) for i in range(predict.scope.count())]
    assert predict._cases(NEVER_TRAINED_ON) == labelled[4:]
    said = []
    monkeypatch.setattr(predict_module, "notify_error", said.append)
    monkeypatch.setattr(backend, "provenance", lambda model: Provenance("m"))
    assert predict.predict(NEVER_TRAINED_ON) is None and predict.worker is None
    assert said == [
        f"this model does not list the cases of {predict.session.task.name} it trained on: choose 'all cases'"
    ]


def test_stop_ends_a_tasks_prediction_after_the_current_case(widgets, qtbot, tiny_ct_task, tiny_checkpoint):
    """Predicting every case can take minutes on a CPU: the Predict button becomes Stop, and Stop keeps the cases
    done so far."""
    _, data, _, predict = widgets
    open_task(qtbot, data, tiny_ct_task)
    predict.session.set_checkpoint(tiny_checkpoint)
    total = len(predict._cases("all cases"))
    worker = predict.predict("all cases")
    assert predict.run_button.text() == "Stop" and predict.run_button.isEnabled()
    worker.yielded.connect(lambda event: predict.run_button.click() if event.done == 1 else None)  # as a user would
    qtbot.waitUntil(lambda: predict.worker is None, timeout=60_000)
    assert predict.run_button.text() == "Predict" and predict.run_button.isEnabled()
    assert 1 <= len(predict.session.results) < total
    assert predict.status.text().startswith(f"stopped: predicted {len(predict.session.results)} of {total} case(s)")


def test_the_train_form_offers_the_devices_this_machine_has(widgets):
    """Issue 25's visible bug: the device choices came from the field's metadata (auto, cpu, cuda, mps), so a
    CPU-only machine was offered cuda and mps; they come from available_devices()."""
    from napari_volseg.engine.device import available_devices

    _, _, train, _ = widgets
    assert tuple(train.form.fields["device"].choices) == tuple(available_devices())
    assert list(train.form.fields["device"].parts[0].choices) == available_devices()


# -- the Train tab's first minutes (issue 27): Stop leaves a model, warm starts, an unusable model asked about --


def use_preset(train, preset):
    session = train.session
    session.presets["fast-cpu"] = preset
    session.preset = preset
    session.preset_changed.emit(preset)


MOMENTS = {
    "locator validated": lambda e: isinstance(e, ev.CheckpointSaved) and e.kind == "best" and e.stage == "locator",
    "main net started": lambda e: isinstance(e, ev.Started) and e.stage == "",
    "main net validated": lambda e: isinstance(e, ev.Validated) and e.stage == "",
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_stop_at_any_moment_after_the_first_validation_leaves_a_model_that_predicts(
    widgets, qtbot, train_ct_task, tmp_path, moment
):
    viewer, data, train, predict = widgets
    open_task(qtbot, data, train_ct_task)
    use_preset(train, cascade_preset(epochs=40, val_every=1))
    out = tmp_path / "run.safetensors"
    worker = train.start(out=out)
    worker.yielded.connect(lambda event: train.stop() if MOMENTS[moment](event) else None)
    qtbot.waitUntil(lambda: train.worker is None, timeout=300_000)
    status = train.status.text()
    assert status.startswith("stopped at step") and "Model:" in status and "nan" not in status
    assert train.session.checkpoint == out and out.is_file()
    assert ("coarse whole-scan network" in status) == (ckpt.load(out).locator is None)
    assert "sable" in status  # the verdict: "Usable: ..." or "Not usable yet: ..."
    predict.predict("current case")
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    assert predict.table.rowCount() == 1
    assert 0.0 <= float(predict.table.item(0, 1).text()) <= 1.0


def test_the_warm_start_is_offered_for_the_tasks_modality_and_reaches_the_trainer(
    widgets, qtbot, train_ct_task, tmp_path, monkeypatch
):
    from napari_volseg.engine import trainer as train_module
    from napari_volseg.io import synthetic

    viewer, data, train, _ = widgets
    open_task(qtbot, data, train_ct_task)
    items = [train.start_from.itemText(i) for i in range(train.start_from.count())]
    assert items[0] == "scratch (default: no model of this modality)"  # the shipped models are MRI
    assert {"msd-heart", "msd-hippocampus"} <= set(items)  # a CT task may still start from one, by choice

    mri = synthetic.write_task(tmp_path / "Task93_MRI", cases=6, kind="mri", spec=None)
    open_task(qtbot, data, mri)
    items = [train.start_from.itemText(i) for i in range(train.start_from.count())]
    assert items[0] == "msd-heart (default)" and items[-1] == "scratch"
    captured = {}
    monkeypatch.setattr(train_module, "Trainer", recording_trainer(captured))
    train.start(out=tmp_path / "warm.safetensors")
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)
    assert captured["warm_name"] == "msd-heart" and captured["warm_from"].model_config.in_channels == 1
    train.start_from.setCurrentIndex(train.start_from.findData("scratch"))
    train.start(out=tmp_path / "cold.safetensors")
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)
    assert captured["warm_from"] is None and captured["warm_name"] == ""


def test_predicting_with_a_model_not_usable_yet_asks_first(
    widgets, qtbot, tiny_ct_task, tiny_checkpoint, tmp_path, monkeypatch
):
    from qtpy.QtWidgets import QMessageBox

    from napari_volseg.zoo.card import copy_checkpoint

    viewer, data, _, predict = widgets
    open_task(qtbot, data, tiny_ct_task)
    bad = copy_checkpoint(tiny_checkpoint, tmp_path / "bad.safetensors", {"best_dice": "0.09"})
    predict.session.set_checkpoint(bad)
    asked = []
    answer = [QMessageBox.No]
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: (asked.append(text), answer[0])[1])
    assert predict.predict("current case") is None and predict.worker is None
    assert len(asked) == 1 and "not usable yet: Dice 0.09" in asked[0] and "train longer" in asked[0]
    answer[0] = QMessageBox.Yes
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    predict.session.set_checkpoint(tiny_checkpoint)  # a usable (or never validated) model is not asked about
    asked.clear()
    assert predict.predict("current case") is not None and not asked
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    label = predict.chooser.combo.currentText()
    assert label  # the chooser names the model in use


def test_a_train_dock_opened_while_a_run_goes_on_shows_it_with_its_chart_and_stop(
    widgets, qtbot, train_ct_task, tmp_path
):
    """Closing the tabbed dock mid-run left the run going and a reopened Train dock said "idle" with Start enabled:
    no way to stop the hidden run, and a second could start. The session owns the run; any Train dock shows it."""
    from napari_volseg._napari.widgets import TrainWidget

    viewer, data, first, _ = widgets
    open_task(qtbot, data, train_ct_task)
    use_quick_settings(first, epochs=200)
    first.start(out=tmp_path / "run.safetensors")
    qtbot.waitUntil(lambda: len(first.plot.loss) >= 3, timeout=120_000)
    first.hide()  # the dock closed with its title bar's ×
    reopened = TrainWidget(viewer)
    assert not reopened.start_button.isEnabled() and reopened.stop_button.isEnabled()
    assert reopened.start() is None  # no second run
    assert len(reopened.plot.loss) >= 3 and "step" in reopened.status.text()
    seen = len(reopened.plot.loss)
    qtbot.waitUntil(lambda: len(reopened.plot.loss) > seen, timeout=60_000)  # live, not a copy
    reopened.stop_button.click()
    qtbot.waitUntil(lambda: reopened.session.training is None, timeout=60_000)
    qtbot.waitUntil(lambda: reopened.worker is None, timeout=10_000)
    assert reopened.status.text().startswith("stopped at step") and reopened.start_button.isEnabled()
    assert first.start_button.isEnabled()  # the hidden one agrees


def test_a_cascades_chart_keeps_the_locators_curve_and_marks_where_the_main_net_starts(
    widgets, qtbot, train_ct_task, tmp_path
):
    viewer, data, train, _ = widgets
    open_task(qtbot, data, train_ct_task)
    use_preset(train, cascade_preset(epochs=5, val_every=1))
    train.start(out=tmp_path / "run.safetensors")
    qtbot.waitUntil(lambda: train.worker is None, timeout=300_000)
    steps = [step for step, _ in train.plot.loss]
    assert steps == sorted(steps) and len(set(steps)) == len(steps) == 50  # 10 locator + 40 main steps, in a row
    assert [line.value() for line in train.plot.marks] == [10]
    assert not train.settings.isExpanded()


def test_predict_is_off_without_a_model_and_says_why(widgets, tiny_checkpoint):
    """Issue 26 item 6: Predict was enabled with "no model" and its error toast was cut to "no model: choose one
    (pretrained, pulled…"; now it is off, its tooltip and the status say why in a line that fits."""
    from napari_volseg._napari.widgets.predict import NO_MODEL

    _, _, _, predict = widgets
    predict.session.set_checkpoint(None)
    assert not predict.run_button.isEnabled() and predict.run_button.toolTip() == NO_MODEL
    assert predict.status.text() == NO_MODEL and len(NO_MODEL) <= 60
    predict.session.set_checkpoint(tiny_checkpoint)
    assert predict.run_button.isEnabled() and predict.run_button.toolTip() == ""
    # the model chosen is named (the walkthrough's "no model" line just vanished)
    assert predict.status.text() == f"model in use: {tiny_checkpoint.stem}: choose the cases above and press Predict"


def test_closing_the_panel_stops_its_jobs_and_training_goes_on(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Issue 26 item 1: napari's close button only took the dock's widget out; its prediction ran on unseen while a
    reopened panel showed nothing. Now the panel's own jobs stop with one line; the session's training goes on."""

    from napari_volseg._napari import workers
    from napari_volseg._napari.widgets import dock as dock_module

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    said = []
    monkeypatch.setattr(dock_module, "show_info", said.append)
    viewer, dock = docked(make_napari_viewer)
    predict = dock.widgets["Predict & evaluate"]
    owned = workers.start(predict.session, endless_job(), owner=predict)  # as a prediction is started
    session_run = workers.start(predict.session, endless_job())  # as the Train tab's run: the session's
    destroyed = []
    dock.destroyed.connect(lambda *_: destroyed.append(True))
    viewer.window.remove_dock_widget(dock)  # what the title bar's x does
    qtbot.waitUntil(lambda: destroyed == [True] and not owned.is_running, timeout=10_000)
    assert said == ["the napari-volseg panel was closed: stopped: a prediction, ranking or fine-tune"]
    assert session_run.is_running  # training goes on, for a reopened Train to show
    session_run.quit()
    qtbot.waitUntil(lambda: not session_run.is_running, timeout=10_000)


def test_closing_the_panel_during_training_leaves_it_running_for_the_reopened_panel(
    make_napari_viewer, qtbot, tiny_ct_task, tmp_path, monkeypatch
):
    """The walkthrough closed the dock 15 s into training: the run stopped (its dock's destruction stopped it), its
    unvalidated weights became the model in silence, and the closed panel's widgets raised "wrapped C/C++ object of
    type QComboBox has been deleted" at every later checkpoint. Now the run goes on, a reopened panel shows it with
    Stop, the closed widgets hear nothing, and closing the viewer stops it."""

    from napari_volseg._napari.widgets import VolsegDock
    from napari_volseg._napari.widgets import dock as dock_module
    from napari_volseg.engine import trainer as train_module

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_module, "Trainer", scripted_trainer(until_stopped()))
    said = []
    monkeypatch.setattr(dock_module, "show_info", said.append)
    viewer, dock = docked(make_napari_viewer)
    open_task(qtbot, dock.widgets["Data"], tiny_ct_task)
    worker = dock.widgets["Train"].start()
    trainer = dock.widgets["Train"].trainer
    qtbot.waitUntil(lambda: len(dock.widgets["Train"].plot.loss) >= 3, timeout=10_000)
    destroyed = []
    dock.destroyed.connect(lambda *_: destroyed.append(True))
    viewer.window.remove_dock_widget(dock)
    qtbot.waitUntil(lambda: destroyed == [True], timeout=10_000)
    qtbot.wait(200)
    assert worker.is_running and not trainer.stopping
    assert said == [
        "the napari-volseg panel was closed: the training run goes on: Plugins → VolSeg shows it again, with Stop"
    ]
    reopened = VolsegDock(viewer)
    viewer.window.add_dock_widget(reopened, name="napari-volseg")
    train = reopened.widgets["Train"]
    assert train.stop_button.isEnabled() and not train.start_button.isEnabled() and train.plot.loss
    train.session.set_checkpoint(train.session.checkpoint)  # a checkpoint: the closed panel's widgets hear nothing
    viewer.close()  # the window goes: the session stops its run
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    assert trainer.stopping


def test_closing_the_panel_asks_and_no_keeps_the_panel_and_its_job(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Closing a panel whose prediction runs asks first, naming the job; No puts the same panel back, still running
    (the walkthrough's panel went, its job unseen)."""

    from qtpy.QtWidgets import QMessageBox

    from napari_volseg._napari import workers

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda parent, title, text, *a: (asked.append(text), QMessageBox.No)[1]
    )
    viewer, dock = docked(make_napari_viewer, show=True)
    predict = dock.widgets["Predict & evaluate"]
    owned = workers.start(predict.session, endless_job(), desc="predicting 15 cases", owner=predict)
    viewer.window.remove_dock_widget(dock)  # what the title bar's x does
    qtbot.waitUntil(lambda: dock.parent() is not None, timeout=10_000)  # docked again
    assert asked and "Running in this panel: predicting 15 cases." in asked[0]
    qtbot.waitUntil(dock.isVisible, timeout=5_000)
    assert dock.parent().windowTitle() == "napari-volseg"
    qtbot.wait(200)
    assert owned.is_running
    owned.quit()
    qtbot.waitUntil(lambda: not owned.is_running, timeout=10_000)


def test_closing_the_viewer_mid_prediction_shows_no_error(
    make_napari_viewer, qtbot, tiny_ct_task, tiny_checkpoint, tmp_path, monkeypatch
):
    """The walkthrough quit during "all cases": "showing the layers failed: list index out of range" (the layers of
    the case predicted last were still being shown in turns on the closed viewer)."""

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    errors = []
    monkeypatch.setattr("napari_volseg._napari.notify.show_error", lambda message: errors.append(message))
    viewer, dock = docked(make_napari_viewer)
    data, predict = dock.widgets["Data"], dock.widgets["Predict & evaluate"]
    open_task(qtbot, data, tiny_ct_task)
    session = predict.session
    session.set_checkpoint(tiny_checkpoint)
    worker = predict.predict("all cases")
    qtbot.waitUntil(lambda: len(session.results) >= 1, timeout=120_000)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=120_000)
    qtbot.wait(500)
    assert errors == [] and session.closed


def test_closing_the_panel_mid_prediction_raises_nothing(
    make_napari_viewer, qtbot, tiny_ct_task, tiny_checkpoint, tmp_path, monkeypatch
):
    """The walkthrough closed the panel while "all cases" predicted: two "wrapped C/C++ object ... has been deleted"
    errors and tracebacks followed (the worker's callbacks reached the deleted widgets)."""
    from napari_volseg._napari.widgets import VolsegDock
    from napari_volseg._napari.widgets import dock as dock_module

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dock_module, "show_info", lambda message: None)
    errors = []
    monkeypatch.setattr("napari_volseg._napari.notify.show_error", lambda message: errors.append(message))
    viewer, dock = docked(make_napari_viewer)
    data, predict = dock.widgets["Data"], dock.widgets["Predict & evaluate"]
    open_task(qtbot, data, tiny_ct_task)
    predict.session.set_checkpoint(tiny_checkpoint)
    worker = predict.predict("all cases")
    qtbot.waitUntil(lambda: len(predict.session.results) >= 1, timeout=120_000)
    viewer.window.remove_dock_widget(dock)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=120_000)
    qtbot.wait(500)
    reopened = VolsegDock(viewer)
    viewer.window.add_dock_widget(reopened, name="napari-volseg")
    qtbot.wait(200)
    assert errors == []
    again = reopened.widgets["Predict & evaluate"]
    assert 1 <= len(again.session.results) < 8  # the closed panel's run stopped after the case it was on
    assert again.status.text() == f"{len(again.session.results)} case(s) predicted so far; click a row to open one"


def test_after_stop_with_the_settings_unfolded_the_outcome_is_in_view(
    make_napari_viewer, qtbot, tiny_ct_task, tmp_path, monkeypatch
):
    """The walkthrough unfolded Settings and Advanced at 1366 x 768, pressed Start and Stop: the status and chart
    were below the fold, only a toast said what the run left."""

    from napari_volseg.engine import trainer as train_module

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_module, "Trainer", scripted_trainer(until_stopped()))
    viewer, dock = docked(make_napari_viewer, show=True)
    viewer.window.set_geometry(0, 0, 1366, 768)
    dock.show_tab("Train")
    data, train = dock.widgets["Data"], dock.widgets["Train"]
    open_task(qtbot, data, tiny_ct_task)
    train.start()
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 3, timeout=10_000)
    train.settings.expand(animate=False)
    train.form.expander.expand(animate=False)
    qtbot.wait(200)
    assert train.status.visibleRegion().isEmpty()  # below the fold while the settings are unfolded
    train.stop()
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)
    qtbot.wait(200)
    assert train.status.text().startswith("stopped") and not train.status.visibleRegion().isEmpty()


def test_a_run_stopped_before_validating_leaves_the_model_in_use(
    widgets, qtbot, tiny_ct_task, tiny_checkpoint, tmp_path, monkeypatch
):
    """The walkthrough chose msd-heart (before the run, and again during one) and stopped a short run: its
    unvalidated last weights became the model in use."""

    from napari_volseg.engine import trainer as train_module

    last = tmp_path / "run.last.safetensors"
    last.write_bytes(tiny_checkpoint.read_bytes())

    _, data, train, _ = widgets
    open_task(qtbot, data, tiny_ct_task)
    monkeypatch.setattr(train_module, "Trainer", scripted_trainer(until_stopped(last)))
    train.start()
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 2, timeout=10_000)
    train.session.set_checkpoint(tiny_checkpoint)  # chosen during the run
    train.stop()
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)
    assert train.session.checkpoint == tiny_checkpoint
    assert train.status.text().endswith(f"Not validated: {tiny_checkpoint.stem} stays in use.")
