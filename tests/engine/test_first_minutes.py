"""The Train button's first minutes: a model whenever Stop comes after the first validation (a cascade's locator is the
model until its main net validates better), warm starts from another model, and the verdict on whether a model is
usable yet."""

import dataclasses
import math

import numpy as np
import pytest
from conftest import cascade_preset, quick_preset

from napari_volseg import events as ev
from napari_volseg import preprocess
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import naming
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.quality import judge, of_file
from napari_volseg.engine.run import load_fitting
from napari_volseg.engine.trainer import Trainer, check_warm_start
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon, synthetic
from napari_volseg.models import build_model, model_config
from napari_volseg.zoo.registry import resolve
from napari_volseg.zoo.warm import SCRATCH, candidates, default_start, start_from


def run_until(trainer, stop_when):
    events = []
    for event in trainer.run():
        events.append(event)
        if stop_when(event):
            trainer.stop()
    assert not any(isinstance(e, ev.Failed) for e in events), events[-1]
    return events


def locator_published(event):
    return isinstance(event, ev.CheckpointSaved) and event.kind == "best" and event.stage == "locator"


def test_stop_after_the_locators_validation_leaves_a_whole_scan_model(train_ct_task, tmp_path):
    """Stopped before the main net began (while the regions of interest were found), the run's model file is the
    locator's: a standalone coarse model that segments the whole scan."""
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "run.safetensors"
    trainer = Trainer(task, cascade_preset(epochs=5, val_every=1), out, cache_root=tmp_path / "cache")
    events = run_until(trainer, locator_published)
    published = [e for e in events if locator_published(e)]
    assert published and published[-1].path == out and published[-1].dice is not None
    assert not any(isinstance(e, ev.Started) and e.stage == "" for e in events)  # the main net never started
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.stopped
    assert finished.best_path == out and math.isclose(finished.best_dice, published[-1].dice)
    model = ckpt.load(out)
    assert model.locator is None  # one network on the locator's coarse grid: nothing left to locate
    image, truth = task.cases[-1].load()
    labels = Predictor(out).predict(image).labels
    assert labels.shape == truth.data.shape and labels.any()
    assert of_file(out).usable is not None  # validated: a verdict to show


@pytest.mark.slow
def test_the_main_net_replaces_the_locator_only_where_it_validates_better(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "run.safetensors"
    trainer = Trainer(task, cascade_preset(epochs=6, val_every=1), out, cache_root=tmp_path / "cache")
    events = run_until(trainer, lambda e: False)
    locator_dice = max(e.dice for e in events if locator_published(e))
    main = [e for e in events if isinstance(e, ev.Validated) and e.stage == ""]
    assert main and all(e.volume_ratio is not None and e.volume_ratio >= 0 for e in main)
    finished = events[-1]
    model = ckpt.load(out)
    assert math.isclose(finished.best_dice, max([locator_dice] + [e.mean for e in main]))
    assert (model.locator is not None) == any(e.mean > locator_dice for e in main)
    assert math.isclose(model.best_dice, finished.best_dice)
    record = next(h for h in model.history if h["step"] == model.step)
    assert "volume_ratio" in record  # what the quality verdict reads


def test_stop_as_the_main_net_starts_keeps_the_locators_model(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "run.safetensors"
    trainer = Trainer(task, cascade_preset(epochs=5, val_every=1), out, cache_root=tmp_path / "cache")
    events = run_until(trainer, lambda e: isinstance(e, ev.Started) and e.stage == "")
    finished = events[-1]
    assert finished.stopped and finished.best_path == out
    assert ckpt.load(out).locator is None and naming.last_path(out).is_file()  # main's last weights kept to resume


def test_stop_as_the_main_net_prepares_keeps_the_locators_model(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "run.safetensors"
    trainer = Trainer(task, cascade_preset(epochs=5, val_every=1), out, cache_root=tmp_path / "cache")
    seen = []

    def preparing_main(event):
        seen.append(event)
        roi_done = any(isinstance(e, ev.Progress) and str(e.item).startswith("region of interest") for e in seen)
        return roi_done and isinstance(event, ev.Progress) and not str(event.item).startswith("region of interest")

    events = run_until(trainer, preparing_main)
    assert not any(isinstance(e, ev.Started) and e.stage == "" for e in events)
    assert events[-1].stopped and events[-1].best_path == out and ckpt.load(out).locator is None


@pytest.mark.parametrize(
    "dice,ratio,usable,line",
    [
        (0.09, 20.4, False, "not usable yet: Dice 0.09, predicts 20× the true volume; train longer"),
        (0.62, 0.1, False, "not usable yet: Dice 0.62, predicts 1/10 of the true volume; train longer"),
        (0.41, 1.1, False, "not usable yet: Dice 0.41; train longer"),
        (0.84, 1.02, True, "usable: validation Dice 0.84"),
        (float("nan"), None, None, "not validated: no quality measured"),
    ],
)
def test_the_quality_verdict(dice, ratio, usable, line):
    quality = judge(dice, ratio)
    assert quality.usable is usable and quality.line == line


def test_a_region_of_interest_is_capped_to_what_the_main_net_trained_on():
    """A locator marking a whole chest sent the main net over the whole scan at full resolution (15× the time)."""
    mask = np.zeros((60, 200, 200), bool)
    mask[5:55, 10:190, 10:190] = True
    mask[20:40, 120:160, 100:140] = True
    box = preprocess.roi_box(mask, (2.0, 1.0, 1.0), 0.0)
    capped = preprocess.cap_box(box, mask, (2.0, 1.0, 1.0), (40.0, 60.0, 300.0))
    assert [b - a for a, b in capped] == [20, 60, 180]  # z: 40 mm at 2 mm; x under its cap stays
    assert all(0 <= a < b <= n for (a, b), n in zip(capped, mask.shape, strict=True))


@pytest.mark.slow
def test_the_locators_cap_round_trips_and_old_checkpoints_have_none(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "run.safetensors"
    run_until(Trainer(task, cascade_preset(epochs=5, val_every=1), out, cache_root=tmp_path / "cache"), lambda e: False)
    model = ckpt.load(naming.last_path(out))
    assert model.locator is not None and model.locator.max_extent_mm is not None
    assert all(e > 0 for e in model.locator.max_extent_mm)
    old = ckpt.load(__import__("pathlib").Path(__file__).parent / "data" / "v0.1-cascade.safetensors")
    assert old.locator.max_extent_mm is None


def test_a_warm_start_copies_all_but_a_head_for_other_classes(train_ct_task, tmp_path):
    """msd-hippocampus (MRI, 3 classes) starting the CT phantom (2 classes): every layer but the last is copied."""
    task = decathlon.load_task(train_ct_task)
    warm = ckpt.load(resolve("msd-hippocampus"))
    preset = quick_preset(epochs=1, iterations_per_epoch=2, val_every=1)
    out = tmp_path / "warm.safetensors"
    trainer = Trainer(task, preset, out, cache_root=tmp_path / "cache", warm_from=warm, warm_name="msd-hippocampus")
    events = run_until(trainer, lambda e: False)
    assert isinstance(events[-1], ev.Finished)
    net = build_model(model_config(preset.model, 1, 2))
    head = [k for k, v in net.state_dict().items() if k not in warm.state or warm.state[k].shape != v.shape]
    assert head and trainer.current.warmed == len(net.state_dict()) - len(head)
    assert ckpt.load(out).started_from == "msd-hippocampus"
    assert ckpt.load(out).model_config.num_classes == 2


def test_load_fitting_counts_what_it_copied():
    a = build_model(model_config("cpu-lean", 1, 3))
    b = build_model(model_config("cpu-lean", 1, 2))
    copied = load_fitting(b, a.state_dict())
    assert 0 < copied < len(b.state_dict())
    same = next(k for k in b.state_dict() if b.state_dict()[k].shape == a.state_dict()[k].shape and "weight" in k)
    assert np.array_equal(b.state_dict()[same].numpy(), a.state_dict()[same].numpy())


def test_a_model_of_other_channels_or_another_network_does_not_fit(train_ct_task):
    task = decathlon.load_task(train_ct_task)
    warm = ckpt.load(resolve("msd-heart"))
    two_channels = dataclasses.replace(task, modalities={0: "CT", 1: "PET"})
    with pytest.raises(VolsegError, match="reads 1 channel"):
        check_warm_start(warm, quick_preset(), two_channels, "msd-heart")
    other_net = dataclasses.replace(quick_preset(), model="seed-net1")
    with pytest.raises(VolsegError, match="its network is not seed-net1"):
        check_warm_start(warm, other_net, task, "msd-heart")


def test_the_default_start_is_a_model_of_the_tasks_modality(tmp_path, train_ct_task):
    ct = decathlon.load_task(train_ct_task)
    mri = decathlon.load_task(synthetic.write_task(tmp_path / "Task93_MRI", cases=2, kind="mri"))
    preset = quick_preset()
    assert {c.name for c in candidates(ct, preset)} >= {"msd-heart", "msd-hippocampus"}  # chosen by name: fit
    assert default_start(ct, preset) == SCRATCH  # no shipped CT model
    assert default_start(mri, preset) == "msd-heart"
    assert start_from("scratch", mri, preset) == (None, "")
    loaded, name = start_from("auto", mri, preset)
    assert name == "msd-heart" and loaded.model_config.num_classes == 2


def test_the_moving_average_of_the_weights_is_applied_only_inside_its_block():
    import torch

    from napari_volseg.engine.run import EmaWeights

    net = torch.nn.Linear(3, 2)
    ema = EmaWeights(net, decay=0.99)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # the first update is warmed up: decay min(0.99, 2/11)
    moved = net.weight.detach().clone()
    with ema.applied(net):
        expected = start * (2 / 11) + moved * (9 / 11)
        assert torch.allclose(net.weight, expected)
    assert torch.equal(net.weight, moved)  # the raw weights are back


@pytest.mark.slow
@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_with_ema_the_model_file_holds_the_average_and_the_last_file_the_raw_weights(train_ct_task, tmp_path, ema):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "ema.safetensors"
    preset = quick_preset(epochs=2, iterations_per_epoch=3, val_every=1, val_cases=0, average_last=1, ema=ema)
    run_until(Trainer(task, preset, out, cache_root=tmp_path / "cache"), lambda e: False)
    model, last = ckpt.load(out), ckpt.load(naming.last_path(out))
    assert model.step == last.step == 6 and model.preset.train.ema == ema
    same = all(np.array_equal(model.state[k].numpy(), last.state[k].numpy()) for k in last.state)
    assert same == (ema == 0)  # with ema the model is the average; the optimizer continues from the raw weights


def test_a_task_starts_from_its_own_model_first(hippocampus_dir):
    """The hippocampus task starts from msd-hippocampus, not from msd-heart (both MRI): its checkpoint names the task."""
    task = decathlon.load_task(hippocampus_dir)
    assert default_start(task, quick_preset()) == "msd-hippocampus"
    assert [c.name for c in candidates(task, quick_preset())][:2] == ["msd-hippocampus", "msd-heart"]
