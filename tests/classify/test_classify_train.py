"""Training the classifier: the engine's events, Stop, the checkpoint it writes and what predicts from it."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_volseg import events as ev
from napari_volseg.classify import checkpoint as cckpt
from napari_volseg.classify.config import CLASSIFY_PRESETS, classify_preset
from napari_volseg.classify.data import FixedSource
from napari_volseg.classify.predict import Classifier, load_volume
from napari_volseg.classify.train import ClassifierTrainer, digits_source
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.errors import VolsegError
from napari_volseg.io import nifti


def test_the_seed_recipe_is_the_seed_reports_and_the_fast_one_is_a_named_other_net():
    seed = classify_preset("seed-vgg13-3d")
    assert (seed.model, seed.epochs, seed.lr, seed.batch_size) == ("vgg13-3d", 60, 1e-5, 32)
    fast = CLASSIFY_PRESETS["fast-vgg13-3d"]
    assert fast.model == "vgg13-3d-narrow" and fast.lr > seed.lr and fast.epochs < seed.epochs
    with pytest.raises(VolsegError, match="unknown classifier training preset 'x'"):
        classify_preset("x")
    with pytest.raises(VolsegError, match="unknown classifier setting"):
        seed.with_overrides(patch_size=3)


def test_a_run_yields_the_engines_events_and_writes_a_checkpoint_that_predicts(tiny_preset, tmp_path):
    out = tmp_path / "runs" / "c.safetensors"
    events = list(ClassifierTrainer(tiny_preset, out).run())
    started, finished = events[0], events[-1]
    assert isinstance(started, ev.Started) and isinstance(finished, ev.Finished), events[-1]
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert started.total_steps == len(steps) == 2 * 3  # 20 volumes in batches of 8, twice
    assert started.patch_size == (16, 16, 16) and len(started.train_cases) == len(started.val_cases) == 20
    validated = [e for e in events if isinstance(e, ev.Validated)]
    assert [v.metric for v in validated] == ["accuracy"] * 2 and set(validated[0].dice) <= set("0123456789")
    assert [type(e) for e in events].count(ev.CheckpointSaved) == 2 and not finished.stopped
    assert (
        finished.best_path == out
        and finished.accuracy == validated[-1].mean
        and finished.best_dice != finished.best_dice
    )
    assert [h["epoch"] for h in finished.history] == [0, 1]
    assert finished.history[1]["loss"] < finished.history[0]["loss"]  # it learns

    loaded = cckpt.load(out)
    assert loaded.classes == tuple("0123456789") and loaded.epoch == 2 and loaded.step == 6
    assert loaded.preset["model"] == "tiny-3d" and loaded.accuracy == finished.accuracy
    assert "20 train digits x 1 copies" in loaded.data
    test = digits_source(tiny_preset).test()
    classifier = Classifier(out, device="cpu")
    probs = classifier.probabilities(test.volumes)
    assert probs.shape == (20, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probs.argmax(1) == test.labels) == pytest.approx(finished.accuracy)
    one = classifier.predict(test.volumes[0], "first")
    assert one.label == str(probs[0].argmax()) and one.probabilities["0"] == pytest.approx(float(probs[0, 0]), abs=1e-6)


def test_stop_ends_after_the_current_step_with_a_scored_checkpoint(tiny_preset, tmp_path):
    trainer = ClassifierTrainer(tiny_preset.with_overrides(epochs=5), tmp_path / "c.safetensors")
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, ev.Step):
            trainer.stop()
    assert sum(isinstance(e, ev.Step) for e in events) == 1
    assert isinstance(events[-1], ev.Finished) and events[-1].stopped and events[-1].step == 1
    assert cckpt.load(tmp_path / "c.safetensors").step == 1


def test_failures_are_one_failed_event(tiny_preset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    [failed] = list(ClassifierTrainer(tiny_preset, blocker / "c.safetensors").run())
    assert isinstance(failed, ev.Failed) and "cannot create the folder" in failed.message
    wrong = digits_source(tiny_preset).test()
    wrong = dataclasses.replace(wrong, volumes=np.zeros((20, 8, 8, 8), np.float32))
    [failed] = list(ClassifierTrainer(tiny_preset, tmp_path / "c.safetensors", FixedSource(wrong, wrong, "")).run())
    assert "tiny-3d takes 16x16x16 volumes; the data are 8x8x8" == failed.message


def test_checkpoint_kinds_are_told_apart(tiny_preset, tmp_path):
    from napari_volseg.models import build_model, model_config
    from napari_volseg.planning import Plan

    seg = ckpt.save(
        tmp_path / "seg.safetensors",
        build_model(model_config("cpu-lean")),
        Plan(target_spacing=(1.0, 1.0, 1.0)),
        {0: "bg", 1: "fg"},
    )
    with pytest.raises(ckpt.CheckpointError, match="of another kind .*not a napari-volseg classifier checkpoint"):
        cckpt.load(seg)
    list(ClassifierTrainer(tiny_preset.with_overrides(epochs=1), tmp_path / "c.safetensors").run())
    with pytest.raises(ckpt.CheckpointError, match="of another kind"):
        ckpt.load(tmp_path / "c.safetensors")
    loaded = cckpt.load(tmp_path / "c.safetensors")
    loaded.state["head.1.weight"] = torch.zeros(3, 3)
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        loaded.build_model()


def test_volumes_load_from_nifti_and_npy_and_bad_inputs_are_clear(tiny_preset, tmp_path):
    volume = np.random.default_rng(0).random((16, 16, 16), dtype=np.float32)
    nifti.save_image(volume, nifti.geometry_from_spacing(volume.shape), tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(load_volume(tmp_path / "v.nii.gz"), volume)
    np.save(tmp_path / "v.npy", volume)
    np.testing.assert_array_equal(load_volume(tmp_path / "v.npy"), volume)
    np.save(tmp_path / "flat.npy", volume[0])
    with pytest.raises(VolsegError, match="2D float32 array; expected a 3D volume"):
        load_volume(tmp_path / "flat.npy")
    with pytest.raises(VolsegError, match="NIfTI"):
        load_volume(tmp_path / "v.png")
    list(ClassifierTrainer(tiny_preset.with_overrides(epochs=1), tmp_path / "c.safetensors").run())
    with pytest.raises(VolsegError, match="takes 16x16x16 volumes .* got 8x8x8"):
        Classifier(tmp_path / "c.safetensors").probabilities(np.zeros((8, 8, 8)))
