"""The Classify dock widget in a real viewer: a test digit as a layer, probabilities, training with Stop."""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def widget(make_napari_viewer, tiny_preset, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.widgets.classify import ClassifyWidget

    viewer = make_napari_viewer()
    w = ClassifyWidget(viewer)
    w.presets["fast-vgg13-3d"] = tiny_preset
    w.preset.setCurrentText("seed-vgg13-3d")
    w.preset.setCurrentText("fast-vgg13-3d")
    return viewer, w


def test_defaults_follow_the_presets(make_napari_viewer):
    from napari_volseg._napari.widgets.classify import ClassifyWidget
    from napari_volseg.classify.config import CLASSIFY_PRESETS

    w = ClassifyWidget(make_napari_viewer())
    assert w.current_preset() == CLASSIFY_PRESETS["fast-vgg13-3d"]
    w.preset.setCurrentText("seed-vgg13-3d")
    assert w.epochs.value() == 60 and w.current_preset() == CLASSIFY_PRESETS["seed-vgg13-3d"]
    assert w.table.rowCount() == 10 and w.sample.maximum() == 299


def test_train_show_a_digit_and_see_its_class_probabilities(widget, qtbot, tmp_path):
    from napari_volseg.classify import digits3d

    viewer, w = widget
    assert w.epochs.value() == 2
    w.classify()  # no model yet: a notification, nothing runs
    assert w.predicting is None
    worker = w.start(out=tmp_path / "digits.safetensors")
    assert worker is not None and not w.start_button.isEnabled() and w.stop_button.isEnabled()
    qtbot.waitUntil(lambda: w.worker is None and w.classifier is not None, timeout=120_000)
    assert len(w.plot.loss) == 6 and len(w.plot.dice) == 2 and w.start_button.isEnabled()
    assert w.status.text().startswith("model: digits.safetensors (tiny-3d, test accuracy")

    w.sample.setValue(4)
    w.show_sample()  # a worker that may finish before a signal blocker could attach: wait for its layer
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=30_000)
    [layer] = viewer.layers
    truth = digits3d.test_sample(4)
    assert layer.name == f"test digit 4 (true class {truth.labels[0]})"
    np.testing.assert_array_equal(layer.data, truth.volumes[0])
    qtbot.waitUntil(lambda: w.result.text() != "" and w.predicting is None, timeout=30_000)
    expected = w.classifier.probabilities(truth.volumes[0])
    shown = [bar.value() / 1000 for bar in w.bars]
    np.testing.assert_allclose(shown, expected, atol=1e-3)
    assert w.result.text() == f"{layer.name}: predicted {expected.argmax()} ({expected.max():.1%})"
    assert w.bars[int(expected.argmax())].text() == f"{expected.max():.1%}"

    w.sample.setValue(5)  # another digit replaces the layer (and is classified: a model is loaded)
    w.show_sample()
    qtbot.waitUntil(lambda: [la.name for la in viewer.layers][:1] != [layer.name], timeout=30_000)
    assert [la.name for la in viewer.layers] == [f"test digit 5 (true class {digits3d.test_sample(5).labels[0]})"]
    qtbot.waitUntil(lambda: w.result.text().startswith("test digit 5") and w.predicting is None, timeout=30_000)


def test_stop_ends_training_with_a_usable_model(widget, qtbot, tmp_path):
    viewer, w = widget
    w.epochs.setValue(50)
    w.start(out=tmp_path / "stopped.safetensors")
    qtbot.waitUntil(lambda: len(w.plot.loss) >= 1, timeout=60_000)
    w.stop()
    qtbot.waitUntil(lambda: w.worker is None and w.classifier is not None, timeout=60_000)
    assert w.status.text().startswith("model: stopped.safetensors") and len(w.plot.loss) < 50 * 3


def test_a_wrong_layer_or_file_is_one_notification(widget, qtbot, tmp_path, monkeypatch):
    from napari_volseg._napari.widgets import classify as module

    viewer, w = widget
    errors = []
    monkeypatch.setattr(module, "notify_error", lambda message: errors.append(str(message)))
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    worker = w.use_checkpoint(tmp_path / "junk.safetensors")
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=30_000)
    assert w.classifier is None and "not a readable checkpoint" in errors[0] and worker is not None

    w.start(out=tmp_path / "m.safetensors")
    qtbot.waitUntil(lambda: w.worker is None and w.classifier is not None, timeout=120_000)
    w.show_sample()  # a digit classified first: its answer must not stand for the wrong layer's
    qtbot.waitUntil(lambda: "predicted" in w.result.text() and w.predicting is None, timeout=30_000)
    viewer.add_image(np.zeros((8, 8, 8), np.float32), name="small")
    w.classify()
    qtbot.waitUntil(lambda: len(errors) == 2 and w.predicting is None, timeout=30_000)
    assert "takes 16x16x16 volumes" in errors[1]
    assert w.result.text() == "small: not classified" and all(bar.value() == 0 for bar in w.bars)
