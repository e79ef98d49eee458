"""The dock widgets in a real viewer (pytest-qt + make_napari_viewer, under Xvfb)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import quick_preset

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def widgets(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.widgets import DataWidget, PredictWidget, TrainWidget

    viewer = make_napari_viewer()
    return viewer, DataWidget(viewer), TrainWidget(viewer), PredictWidget(viewer)


def test_train_widget_defaults_equal_the_preset_and_config(widgets):
    from napari_volseg.engine.config import TrainConfig, load_preset

    _, _, train, _ = widgets
    preset = load_preset("fast-cpu")
    assert train.current_preset() == preset
    assert train.epochs.value() == preset.train.epochs and train.lr.value() == pytest.approx(preset.train.lr)
    assert tuple(b.value() for b in train.patch) == preset.train.patch_size == TrainConfig().patch_size
    train.preset.setCurrentText("seed-exp2-heart-dice")
    assert train.current_preset() == load_preset("seed-exp2-heart-dice")
    assert train.model.currentText() == "seed-net2" and train.loss.currentText() == "dice"


def _use_quick_settings(train):
    q = quick_preset()
    train.presets["fast-cpu"] = q
    train.preset.setCurrentText("seed-exp1-heart-ce")
    train.preset.setCurrentText("fast-cpu")
    return q


def test_full_flow_open_train_predict_table(widgets, qtbot, train_ct_task, tmp_path):
    from napari_volseg import metrics
    from napari_volseg.io import nifti

    viewer, data, train, predict = widgets
    data.open_task(train_ct_task)
    assert data.table.rowCount() == 6
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]
    np.testing.assert_allclose(viewer.layers[0].scale, (5.0, 1.6, 1.6), rtol=1e-6)

    _use_quick_settings(train)
    train.epochs.setValue(4)  # 40 steps
    worker = train.start(out=tmp_path / "gui.safetensors")
    assert worker is not None and not train.start_button.isEnabled()
    qtbot.waitUntil(lambda: train.worker is None, timeout=180_000)
    assert len(train.plot.loss) == 40 and train.plot.dice
    assert predict.session.checkpoint == tmp_path / "gui.safetensors"

    with qtbot.waitSignal(predict.session.results_changed, timeout=5000, raising=False):
        pass
    predict.predict("validation cases")
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    val_ids = [c.id for c in predict.session.split.val]
    assert predict.table.rowCount() == len(val_ids) >= 1
    # the table's Dice equals metrics.dice recomputed on the two layers
    for row in range(predict.table.rowCount()):
        case_id = predict.table.item(row, 0).text()
        predict._row_clicked(row, 0)
        pred_layer = viewer.layers[f"{case_id} prediction"]
        truth_layer = viewer.layers[f"{case_id} ground truth"]
        recomputed, _ = metrics.dice(np.asarray(pred_layer.data), np.asarray(truth_layer.data))
        row_now = [r for r in range(predict.table.rowCount()) if predict.table.item(r, 0).text() == case_id][0]
        assert float(predict.table.item(row_now, 1).text()) == pytest.approx(recomputed, abs=1e-4)
        assert f"{case_id} errors" in viewer.layers
        assert {layer.metadata["volseg"]["case"] for layer in viewer.layers} == {case_id}
    assert predict.mean_label.text().startswith(f"mean Dice over {len(val_ids)} case(s)")

    csv = predict.export_csv(tmp_path / "table.csv")
    assert len(csv.read_text().strip().splitlines()) == 1 + len(val_ids)
    saved = predict.save_predictions(tmp_path / "preds")
    for path in saved:
        case = data.session.task.case(path.name.replace(".nii.gz", ""))
        src = nifti.load(case.image_path)
        out = nifti.load(path, label=True)
        assert out.data.shape == src.data.shape and np.array_equal(out.affine, src.affine)


def test_stop_during_training_returns_to_idle_with_a_loadable_checkpoint(widgets, qtbot, train_ct_task, tmp_path):
    from napari_volseg.engine import checkpoint as ckpt

    viewer, data, train, _ = widgets
    data.open_task(train_ct_task)
    _use_quick_settings(train)
    train.epochs.setValue(100)
    train.start(out=tmp_path / "stop.safetensors")
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 3, timeout=120_000)
    train.stop_button.click()
    qtbot.waitUntil(lambda: train.worker is None, timeout=30_000)
    assert train.start_button.isEnabled() and not train.stop_button.isEnabled()
    assert train.status.text().startswith("stopped at step")
    last = ckpt.load(ckpt.last_path(tmp_path / "stop.safetensors"))
    assert last.step <= len(train.plot.loss) + 1
    last.build_model()
    assert len(viewer.layers) == 2  # nothing lost


def test_a_failing_worker_becomes_one_notification_and_idle(widgets, qtbot, train_ct_task, tmp_path, monkeypatch):
    from napari_volseg._napari.widgets import train as train_module
    from napari_volseg.engine.train import Trainer
    from napari_volseg.errors import VolsegError

    shown = []
    monkeypatch.setattr(train_module, "notify_error", lambda m: shown.append(str(m)))

    def broken(self):
        raise VolsegError("the disk is full")
        yield  # pragma: no cover

    monkeypatch.setattr(Trainer, "_run", broken)
    viewer, data, train, _ = widgets
    data.open_task(train_ct_task)
    train.start(out=tmp_path / "x.safetensors")
    qtbot.waitUntil(lambda: train.worker is None, timeout=30_000)
    assert shown == ["the disk is full"] and train.start_button.isEnabled()
    assert train.status.text() == "failed: the disk is full"


def test_bad_checkpoint_and_missing_task_are_notifications(widgets, tmp_path, monkeypatch):
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
    assert len(shown) == 3 and all("\n" not in s for s in shown)


def test_widgets_import_and_draw_under_pyqt6():
    code = (
        "import os; os.environ['QT_API']='pyqt6'; os.environ['QT_QPA_PLATFORM']='offscreen';"
        "from qtpy import API_NAME; assert API_NAME == 'PyQt6', API_NAME;"
        "from qtpy.QtWidgets import QApplication; app = QApplication([]);"
        "import napari_volseg._napari.widgets as w; from napari_volseg._napari.widgets.common import LivePlot;"
        "p = LivePlot(); p.add_loss(1, 0.5); p.add_dice(1, 0.7); p.resize(300, 150); p.grab(); print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "QT_API"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_preprocess_widget_defaults_preview_and_cache(widgets, qtbot, train_ct_task, tmp_path):
    from napari_volseg._napari.widgets import PreprocessWidget
    from napari_volseg.engine.config import load_preset

    viewer, data, _, _ = widgets
    pre = PreprocessWidget(viewer)
    assert pre.settings() == load_preset("fast-cpu").plan
    data.open_task(train_ct_task)
    pre.preview()
    layer = viewer.layers["spleen_001 preprocessed"]
    assert layer.data.ndim == 3 and layer.data.dtype.name == "float32"
    pre.run()
    qtbot.waitUntil(lambda: pre.worker is None, timeout=60_000)
    assert "6 preprocessed, 0 already cached" in pre.status.text()
    pre._show_cached()
    assert "6 of 6 cases cached" in pre.status.text()


def test_closing_the_viewer_stops_training(make_napari_viewer, qtbot, train_ct_task, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.state import session_for
    from napari_volseg._napari.widgets import DataWidget, TrainWidget

    viewer = make_napari_viewer()
    data, train = DataWidget(viewer), TrainWidget(viewer)
    data.open_task(train_ct_task)
    _use_quick_settings(train)
    train.epochs.setValue(100)
    worker = train.start(out=tmp_path / "closing.safetensors")
    trainer = train.trainer
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 2, timeout=120_000)
    session_for(viewer).shutdown()  # what the main window's destroyed signal calls
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)
    assert trainer.stopping


def test_seed_report_presets_train_on_the_cli_split_in_the_gui(widgets, qtbot, tmp_path, monkeypatch):
    """One function decides the split: the Train widget, the session (Data table, Predict's
    validation cases) and `volseg train` agree, also for the seed report's fixed split."""
    from conftest import TINY_CT

    from napari_volseg import cli
    from napari_volseg.engine import events as ev
    from napari_volseg.engine.train import Trainer
    from napari_volseg.io import synthetic

    trainers = []

    def no_training(self):
        trainers.append(self)
        return ev.Finished(step=0, best_dice=float("nan"), best_path=None, last_path=None, stopped=True, seconds=0)
        yield  # pragma: no cover

    monkeypatch.setattr(Trainer, "_run", no_training)
    task_dir = synthetic.write_task(tmp_path / "Task02_Heart", cases=20, kind="mri", spec=TINY_CT)
    viewer, data, train, predict = widgets
    data.open_task(task_dir)
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
    shown = {data.table.item(r, 0).text(): data.table.item(r, 4).text() for r in range(data.table.rowCount())}
    assert sorted(k for k, v in shown.items() if v == "validation") == sorted(seed_report)


def test_mirror_tta_follows_the_checkpoints_preset(widgets):
    from pathlib import Path

    _, _, train, predict = widgets
    data = Path(__file__).parents[1] / "engine" / "data"
    assert train.load_checkpoint(data / "v0.1-cascade.safetensors")  # trained mirrored along x, TTA on
    assert predict.tta.isEnabled() and predict.tta.isChecked()
    assert train.load_checkpoint(data / "v0.1-no-preset.safetensors")  # no mirroring: TTA would only hurt
    assert not predict.tta.isEnabled() and not predict.tta.isChecked()
