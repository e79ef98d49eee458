"""Bad inputs in napari: one notification each, and the widget back to idle with nothing written."""

import os

import numpy as np
import pytest
from conftest import write_nifti

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def notifications(monkeypatch):
    """Every napari notification shown during the test, as ``(severity, message)``."""
    from napari.utils.notifications import notification_manager

    shown = []
    monkeypatch.setattr(notification_manager, "records", [])
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


def _messages(shown):
    return [(str(n.severity), n.message) for n in shown]


def test_a_degenerate_affine_dropped_on_the_viewer_opens_with_one_warning(make_napari_viewer, tmp_path, notifications):
    data = np.zeros((6, 5, 4), np.float32)
    path = write_nifti(tmp_path / "scan.nii.gz", data, sform=np.zeros((4, 4)), qform=np.diag([2.0, 3.0, 4.0, 1.0]))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-volseg")
    assert [layer.name for layer in viewer.layers] == ["scan"]
    np.testing.assert_allclose(viewer.layers["scan"].scale, (4.0, 3.0, 2.0))
    assert _messages(notifications) == [("warning", "scan.nii.gz: its sform is degenerate (singular); using its qform")]


@pytest.fixture
def widgets(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.widgets import DataWidget, PredictWidget, TrainWidget

    viewer = make_napari_viewer()
    return viewer, DataWidget(viewer), TrainWidget(viewer), PredictWidget(viewer)


def test_train_refuses_an_unwritable_runs_folder_before_training(
    widgets, tiny_ct_task, unwritable_dir, monkeypatch, notifications
):
    _, data, train, _ = widgets
    data.open_task(tiny_ct_task)
    monkeypatch.setenv("VOLSEG_CACHE", str(unwritable_dir / "cache"))  # runs go to VOLSEG_CACHE/runs
    notifications.clear()
    assert train.start() is None
    [(severity, message)] = _messages(notifications)
    assert severity == "error" and message.startswith(f"cannot write checkpoint {unwritable_dir}/cache/runs/")
    assert message.endswith(f": no permission to write in {unwritable_dir}")
    assert train.worker is None and train.start_button.isEnabled() and not train.stop_button.isEnabled()
    assert list(unwritable_dir.iterdir()) == []


def test_train_refuses_bad_settings_from_the_form_before_training(widgets, tiny_ct_task, notifications):
    _, data, train, _ = widgets
    data.open_task(tiny_ct_task)
    train.current_preset = lambda: train.presets["fast-cpu"].with_overrides(lr=-1.0)  # a form field out of range
    notifications.clear()
    assert train.start() is None
    assert _messages(notifications) == [("error", "train.lr must be > 0 (got -1.0)")]
    assert train.worker is None and train.start_button.isEnabled()


def test_predict_refuses_to_save_into_an_unwritable_folder(widgets, tiny_ct_task, unwritable_dir, notifications):
    from napari_volseg._napari.state import CaseResult
    from napari_volseg.io import decathlon

    _, data, _, predict = widgets
    data.open_task(tiny_ct_task)
    case = decathlon.load_task(tiny_ct_task).cases[0]
    image = case.load_image()
    predict.session.add_result(CaseResult(case.id, np.zeros(image.data.shape, np.uint8), image.geometry))
    notifications.clear()
    assert predict.save_predictions(unwritable_dir / "predictions") == []
    assert predict.export_csv(unwritable_dir / "dice.csv") is None
    assert [severity for severity, _ in _messages(notifications)] == ["error", "error"]
    assert all("no permission to write in" in message for _, message in _messages(notifications))
    assert list(unwritable_dir.iterdir()) == [] and predict.run_button.isEnabled()
