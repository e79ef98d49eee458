"""The training engine on small synthetic tasks, on the CPU."""

import threading

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import quick_preset

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import events as ev
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.patches import effective_patch, sample_patch
from napari_volseg.engine.patches import train_case as _train_case
from napari_volseg.engine.train import Trainer
from napari_volseg.io import decathlon
from napari_volseg.preprocess import Prepared


def _events(trainer):
    return list(trainer.run())


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
    assert ckpt.load(ckpt.last_path(tmp_path / "resumed.safetensors")).step == 3
    events = _events(Trainer(task, preset, tmp_path / "resumed.safetensors", cache_root=tmp_path / "c", resume=True))
    assert next(e for e in events if isinstance(e, ev.Started)).start_step == 3
    assert drawn == straight  # steps 1-3, then 4-6 after the resume: the same patches in the same order
    resumed = ckpt.load(ckpt.last_path(tmp_path / "resumed.safetensors"))
    assert resumed.step == 6 and [h["step"] for h in resumed.history] == [3, 6]
    assert int(resumed.optimizer["state"][0]["step"]) == 6
    a = _weights(ckpt.last_path(tmp_path / "straight.safetensors"))
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


def test_foreground_oversampling_gives_at_least_a_third_foreground_patches():
    label = np.zeros((40, 80, 80), np.uint8)
    label[18:22, 38:42, 38:42] = 1
    prepared = Prepared(image=np.random.rand(1, 40, 80, 80).astype(np.float32), label=label, box=(), source_shape=())
    case = _train_case("x", prepared, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(300):
        _, lab = sample_patch(case, (16, 32, 32), rng, foreground=rng.random() < 0.33)
        hits += bool(lab.any())
    assert hits / 300 >= 0.3


def test_patch_shrinks_to_small_volumes_and_stays_divisible():
    assert effective_patch((64, 64, 64), [(20, 50, 33), (18, 40, 30), (36, 52, 40)], 16) == (16, 48, 32)
    # smaller than one divisor everywhere: the longest axis gets two, so the bottleneck is not 1 voxel
    assert effective_patch((64, 64, 64), [(10, 12, 14)], 16) == (16, 16, 32)
    assert effective_patch((64, 64, 64), [(200, 200, 200)], 16) == (64, 64, 64)


def test_small_patches_come_in_larger_batches():
    from napari_volseg.engine.train import batch_size

    assert batch_size(2, (64, 64, 64), 2 * 64**3) == 2
    assert batch_size(2, (32, 48, 32), 2 * 64**3) == 10  # hippocampus-sized patches
    assert batch_size(2, (16, 16, 16), 2 * 64**3) == 16  # capped
    assert batch_size(3, (32, 48, 32), None) == 3


def test_prediction_on_a_real_heart_case_has_the_source_shape_and_affine(heart_dir, tmp_path):
    from napari_volseg import preprocess
    from napari_volseg.engine.infer import predict_files
    from napari_volseg.models import build_model, model_config

    task = decathlon.load_task(heart_dir)
    plan = preprocess.plan_for_task(task, cases=task.cases[:2], max_voxels=400_000)
    model = build_model(model_config("cpu-lean"))
    path = ckpt.save(
        tmp_path / "untrained.safetensors", model, plan, task.labels, preset={"train": {"patch_size": [32, 64, 64]}}
    )
    source = task.cases[0].image_path
    [progress] = list(predict_files(path, [source], tmp_path / "out"))
    assert progress.done == 1
    written = nib.load(str(tmp_path / "out" / "la_003.nii.gz"))
    original = nib.load(str(source))
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    assert (int(written.header["qform_code"]), int(written.header["sform_code"])) == (
        int(original.header["qform_code"]),
        int(original.header["sform_code"]),
    )


@pytest.mark.parametrize("device", ["cuda", "mps", "tpu"])
def test_asking_for_an_absent_device_is_one_line(device):
    from napari_volseg.engine.infer import resolve_device
    from napari_volseg.errors import VolsegError

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(VolsegError):
        resolve_device(device)


def test_prefetching_batch_stream_yields_exactly_the_plain_batches():
    """Loader threads (the GPU path) must not change what is trained on: a batch is a function of its step."""
    from napari_volseg.engine.patches import BatchStream

    rng = np.random.default_rng(0)
    label = np.zeros((24, 40, 40), np.uint8)
    label[8:16, 10:30, 12:28] = 1
    prepared = Prepared(image=rng.normal(size=(1, 24, 40, 40)).astype(np.float32), label=label, box=(), source_shape=())
    cases = [_train_case("a", prepared, rng)]
    kwargs = {"batch_size": 2, "fg_fraction": 0.5, "seed": 3, "augment": True}
    plain = BatchStream(cases, (16, 32, 32), **kwargs)
    ahead = BatchStream(cases, (16, 32, 32), workers=2, **kwargs)
    try:
        for step in [0, 1, 2, 3, 7, 8]:  # including a jump, as after a resume
            (xa, ya), (xb, yb) = plain.get(step), ahead.get(step)
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
            assert xa.shape == (2, 1, 16, 32, 32) and ya.dtype == torch.int64
        assert not torch.equal(plain.get(0)[0], plain.get(1)[0])
    finally:
        ahead.close()


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
