"""The training engine on small synthetic tasks, on the CPU."""

import threading

import pytest
import torch
from conftest import quick_preset

from napari_volseg import events as ev
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import naming
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.trainer import Trainer
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon


def _events(trainer):
    return list(trainer.run())


@pytest.mark.slow
def test_tiny_synthetic_task_reaches_dice_0_9_in_60_steps(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    preset = quick_preset(epochs=6)  # 60 steps: about 20 s on two idle cores
    events = _events(Trainer(task, preset, tmp_path / "m.safetensors", cache_root=tmp_path / "cache"))
    assert not [e for e in events if isinstance(e, ev.Failed)]
    finished = events[-1]
    assert isinstance(finished, ev.Finished)  # about 20 s on two idle cores; speed is bench/train_speed.py's job
    assert finished.best_dice >= 0.9, [e.mean for e in events if isinstance(e, ev.Validated)]
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Progress" and "Started" in kinds and "CheckpointSaved" in kinds
    # the post-processing was decided on the validation cases and travels with the checkpoint
    decision = ckpt.load(finished.best_path).postprocess
    assert decision.cases == 2 and set(decision.dice_before) == {1}
    assert (1 in decision.largest_component) == (decision.dice_after[1] > decision.dice_before[1])
    # the best checkpoint predicts the validation cases as well as validation said
    predictor = Predictor(finished.best_path)
    started = next(e for e in events if isinstance(e, ev.Started))
    case = task.case(started.val_cases[0])
    image, truth = case.load()
    pred = predictor.predict(image).labels
    from napari_volseg.metrics import dice

    assert dice(pred, truth.data)[0] > 0.85


def _weights(path):
    return ckpt.load(path).state


@pytest.mark.slow
def test_resume_continues_the_same_run_exactly(train_ct_task, tmp_path, monkeypatch):
    """Resumed, a run draws the same patches and augmentations, continues Adam's state and history.

    Weights agree only to floating-point noise: oneDNN's CPU kernels are not bit-reproducible
    between runs (two identical uninterrupted runs differ in the last bits too).
    """
    import hashlib

    from napari_volseg.engine import patches as patches_module

    drawn: list[tuple[int, str]] = []
    original = patches_module.sample_patch

    def spy(case, patch, rng, foreground):
        image, label = original(case, patch, rng, foreground)
        drawn.append(hashlib.md5(image.tobytes() + label.tobytes()).hexdigest())
        return image, label

    monkeypatch.setattr(patches_module, "sample_patch", spy)
    task = decathlon.load_task(train_ct_task)
    preset = quick_preset(epochs=2, iterations_per_epoch=3, val_every=1, patch_size=(16, 32, 32), batch_size=1)
    _events(Trainer(task, preset, tmp_path / "straight.safetensors", cache_root=tmp_path / "c"))
    straight = list(drawn)
    assert len(straight) == 6  # the spy sees every patch drawn (6 steps of 1), or the comparison below proves nothing
    drawn.clear()
    interrupted = Trainer(task, preset, tmp_path / "resumed.safetensors", cache_root=tmp_path / "c")
    for event in interrupted.run():
        if isinstance(event, ev.Step) and event.step == 3:
            interrupted.stop()  # as the Stop button or Ctrl-C would
    assert ckpt.load(naming.last_path(tmp_path / "resumed.safetensors")).step == 3
    events = _events(Trainer(task, preset, tmp_path / "resumed.safetensors", cache_root=tmp_path / "c", resume=True))
    assert next(e for e in events if isinstance(e, ev.Started)).start_step == 3
    assert drawn == straight  # steps 1-3, then 4-6 after the resume: the same patches in the same order
    resumed = ckpt.load(naming.last_path(tmp_path / "resumed.safetensors"))
    assert resumed.step == 6 and [h["step"] for h in resumed.history] == [3, 6]
    assert int(resumed.optimizer["state"][0]["step"]) == 6
    a = _weights(naming.last_path(tmp_path / "straight.safetensors"))
    for k, v in resumed.state.items():
        torch.testing.assert_close(v, a[k], rtol=0, atol=0.05, msg=k)


def test_stop_within_one_step_leaves_a_loadable_checkpoint(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    trainer = Trainer(task, quick_preset(epochs=50), tmp_path / "m.safetensors", cache_root=tmp_path / "c")
    steps = []
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, ev.Step):
            steps.append(event.step)
            if event.step == 3:
                threading.Thread(target=trainer.stop).start()
                threading.Event().wait(0.05)
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.stopped
    assert steps[-1] <= 4
    last = ckpt.load(finished.last_path)
    assert last.step == steps[-1] and last.optimizer is not None
    last.build_model()


def test_resume_without_a_last_checkpoint_fails_cleanly(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    events = _events(Trainer(task, quick_preset(), tmp_path / "none.safetensors", resume=True, cache_root=tmp_path))
    assert isinstance(events[-1], ev.Failed) and "nothing to resume" in events[-1].message


def test_gpu_path_options_train_on_the_cpu_too(train_ct_task, tmp_path):
    """channels_last_3d and loader threads are GPU options, but a preset asking for them must still
    train (and save an ordinary checkpoint) on a CPU-only machine."""
    task = decathlon.load_task(train_ct_task)
    preset = quick_preset(epochs=1, iterations_per_epoch=4, val_every=1, channels_last=True, loader_threads=2)
    events = _events(Trainer(task, preset, tmp_path / "m.safetensors", cache_root=tmp_path / "cache"))
    assert not [e for e in events if isinstance(e, ev.Failed)], events[-1]
    assert events[-1].step == 4
    model = ckpt.load(tmp_path / "m.safetensors").build_model()  # strict load of the saved weights
    assert model(torch.zeros(1, 1, 16, 64, 64)).shape == (1, 2, 16, 64, 64)


@pytest.mark.slow
def test_without_validation_the_model_averages_the_last_saves(train_ct_task, tmp_path):
    """Checkpoint averaging: the model is the mean of the weights at the last two saves; the resumable last
    checkpoint keeps the raw weights."""
    import shutil

    task = decathlon.load_task(train_ct_task)
    # saves at steps 20 and 40; the raw weights (ema off: with it each save is already an average)
    preset = quick_preset(epochs=4, val_every=2, val_cases=0, average_last=2, ema=0.0)
    out = tmp_path / "m.safetensors"
    copies = {}
    for event in Trainer(task, preset, out, cache_root=tmp_path / "cache").run():
        if isinstance(event, ev.CheckpointSaved) and event.kind == "last":
            copies[event.step] = shutil.copyfile(event.path, tmp_path / f"last-{event.step}.safetensors")
    assert sorted(copies) == [20, 40]
    at_20, at_40, model = _weights(copies[20]), _weights(copies[40]), ckpt.load(out)
    assert model.history[-1]["averaged_steps"] == [20, 40]
    moved = 0
    for key, value in model.state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (at_20[key] + at_40[key]) / 2, rtol=1e-5, atol=1e-6)
            moved += not torch.allclose(at_20[key], at_40[key])
    assert moved > 10  # the two saves differ, so the mean is neither of them
    assert not all(torch.equal(model.state[k], at_40[k]) for k in model.state)


@pytest.mark.slow
def test_deep_supervision_and_strong_augmentation_train_a_model_that_predicts(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    preset = quick_preset(epochs=2, deep_supervision=2, augment_intensity="strong")
    events = _events(Trainer(task, preset, tmp_path / "m.safetensors", cache_root=tmp_path / "cache"))
    finished = events[-1]
    assert isinstance(finished, ev.Finished), [e for e in events if isinstance(e, ev.Failed)]
    loaded = ckpt.load(finished.best_path)
    assert loaded.model_config.deep_supervision == 2 and loaded.preset.train.augment_intensity == "strong"
    image, truth = task.cases[0].load()
    labels = Predictor(finished.best_path).predict(image).labels
    assert labels.shape == truth.data.shape


def test_deep_supervision_deeper_than_the_net_is_refused_before_any_work(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    with pytest.raises(VolsegError, match="too deep"):
        Trainer(task, quick_preset(deep_supervision=4), tmp_path / "m.safetensors", cache_root=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_resumed_run_stopped_before_its_first_validation_has_no_model_yet(train_ct_task, tmp_path):
    """A model file already at ``--out`` is another run's: a validated run resumed and stopped again before it ever
    validated names no model of its own (its resumable weights are in the last checkpoint)."""
    import shutil

    task = decathlon.load_task(train_ct_task)
    preset = quick_preset(epochs=50, iterations_per_epoch=3, val_every=10, patch_size=(16, 32, 32), batch_size=1)
    out = tmp_path / "m.safetensors"
    first = Trainer(task, preset, out, cache_root=tmp_path / "c")
    for event in first.run():
        if isinstance(event, ev.Step) and event.step == 2:
            first.stop()
    shutil.copyfile(naming.last_path(out), out)  # another run's file where this run's model would go
    again = Trainer(task, preset, out, cache_root=tmp_path / "c", resume=True)
    events = []
    for event in again.run():
        events.append(event)
        if isinstance(event, ev.Step) and event.step == 4:
            again.stop()
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.stopped, finished
    assert not any(isinstance(e, ev.Validated) for e in events)
    assert finished.best_path is None and ckpt.load(finished.last_path).step == finished.step >= 4
