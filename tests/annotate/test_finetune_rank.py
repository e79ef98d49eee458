"""Fine-tuning from a checkpoint, model versions and the uncertainty ranking on the tiny synthetic task."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_CT, cascade_preset

from napari_volseg import events as ev
from napari_volseg.annotate import finetune, uncertainty, versions
from napari_volseg.annotate.accept import accept
from napari_volseg.config import FinetuneConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.patches import BatchStream, TrainCase
from napari_volseg.engine.trainer import Trainer
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon, synthetic
from napari_volseg.zoo import registry


@pytest.mark.slow
def test_finetuning_starts_from_the_given_weights_and_keeps_the_validation_cases(
    annotate_task, tiny_checkpoint, tmp_path
):
    parent = ckpt.load(tiny_checkpoint)
    task = decathlon.load_task(annotate_task)
    new_case = task.test_cases[0]
    accept(task, new_case.id, np.zeros(new_case.geometry().shape_zyx, np.uint8))
    task = decathlon.load_task(annotate_task)
    out = tmp_path / "v002.safetensors"
    # a vanishing learning rate (0 is refused): the weights written must be the ones it started from
    trainer = finetune.finetuner(
        tiny_checkpoint, task, out, FinetuneConfig(minutes=5), lr=1e-30, iterations_per_epoch=2, val_every=1, epochs=1
    )
    assert trainer.case_weights == {new_case.id: FinetuneConfig().recent_weight}
    events = list(trainer.run())
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.best_path == out, events[-1]
    started = next(e for e in events if isinstance(e, ev.Started))
    assert started.val_cases == finetune.validation_ids(parent)
    assert sorted(started.train_cases) == sorted(set(c.id for c in task.cases) - set(started.val_cases))
    child = ckpt.load(out)
    assert child.plan == parent.plan and child.model_config == parent.model_config
    for key, value in parent.state.items():
        assert torch.allclose(child.state[key], value, rtol=0, atol=1e-20), key
    assert child.best_dice == pytest.approx(parent.best_dice, abs=1e-6)  # same weights, same validation cases
    assert new_case.id in child.train_cases
    listed = versions.list_versions(tmp_path)
    assert [v.path.name for v in listed] == ["v002.safetensors"] and listed[0].train_cases == len(child.train_cases)
    assert versions.next_version_path(tmp_path).name == "v003.safetensors"


@pytest.mark.slow
def test_finetuning_a_cascade_keeps_its_locator_and_gives_the_main_net_the_whole_budget(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    parent_path = tmp_path / "cascade.safetensors"
    preset = cascade_preset(epochs=2, iterations_per_epoch=2, val_every=1)
    assert isinstance(list(Trainer(task, preset, parent_path, cache_root=tmp_path / "cache").run())[-1], ev.Finished)
    parent = ckpt.load(parent_path)
    out = tmp_path / "v002.safetensors"
    trainer = finetune.finetuner(parent, task, out, FinetuneConfig(minutes=5), epochs=2, iterations_per_epoch=2)
    trainer.cache_root = tmp_path / "cache"
    events = list(trainer.run())
    assert isinstance(events[-1], ev.Finished), events[-1]
    starts = [e for e in events if isinstance(e, ev.Started)]
    assert [(s.stage, s.total_steps) for s in starts] == [("", 4)]  # no locator stage; all 2 epochs for the net
    child = ckpt.load(out)
    assert child.plan == parent.plan and child.locator.plan == parent.locator.plan
    for key, value in parent.locator.state.items():
        assert torch.equal(child.locator.state[key], value), key


def test_a_shipped_model_is_fine_tuned_by_name_on_a_task_like_its_own(tmp_path):
    mri = decathlon.load_task(synthetic.write_task(tmp_path / "Task93_Heartish", cases=2, kind="mri", spec=TINY_CT))
    trainer = finetune.finetuner("msd-heart", mri, tmp_path / "v001.safetensors")
    assert trainer.init_from.path == registry.resolve("msd-heart") and trainer.init_from.locator is not None
    ct = decathlon.load_task(synthetic.write_task(tmp_path / "Task94_Other", cases=2, kind="ct", spec=TINY_CT))
    meta = json.loads((ct.root / "dataset.json").read_text())
    meta["labels"]["2"] = "tumour"
    decathlon.write_dataset_json(ct.root, meta)
    with pytest.raises(VolsegError, match="segments 1 structure"):
        finetune.finetuner("msd-heart", decathlon.load_task(ct.root), tmp_path / "v002.safetensors")


def test_finetuning_refuses_to_overwrite_its_own_checkpoint(annotate_task, tiny_checkpoint):
    with pytest.raises(VolsegError, match="name a new file"):
        finetune.finetuner(tiny_checkpoint, decathlon.load_task(annotate_task), tiny_checkpoint)


def test_recent_cases_are_drawn_by_their_weight():
    cases = [
        TrainCase(name, np.full((1, 8, 8, 8), value, np.float32), np.zeros((8, 8, 8), np.uint8), {}, np.zeros(1))
        for name, value in (("recent", 1.0), ("old", 0.0))
    ]
    stream = BatchStream(cases, (8, 8, 8), batch_size=1, fg_fraction=0.0, seed=0, augment=False, case_weights=[3, 1])
    recent = sum(float(stream.make(step)[0].mean()) for step in range(400)) / 400
    assert 0.68 < recent < 0.82  # 3 : 1 -> 75 %


def test_expected_edit_share_ranks_unsure_and_empty_predictions_first():
    sure = np.zeros((4, 8, 8), np.float32)
    sure[1:3, 2:6, 2:6] = 0.99
    unsure = sure.copy()
    unsure[1:3, 2:6, 2:6] = 0.6
    assert uncertainty.expected_edit_share(sure) == pytest.approx(0.01, rel=1e-3)
    assert uncertainty.expected_edit_share(unsure) == pytest.approx(0.4, rel=1e-3)
    assert math.isinf(uncertainty.expected_edit_share(np.zeros((4, 8, 8), np.float32)))
    three = np.stack([1 - sure, sure * 0.5, sure * 0.5])  # foreground split between two classes
    assert uncertainty.expected_edit_share(three) > uncertainty.expected_edit_share(sure)


def test_rank_cases_scores_every_unlabelled_case(annotate_task, tiny_checkpoint):
    task = decathlon.load_task(annotate_task)
    items = list(uncertainty.rank_cases(Predictor(tiny_checkpoint), task.test_cases))
    progress, ranking = items[:-1], items[-1]
    assert [p.item for p in progress] == [c.id for c in task.test_cases]
    assert sorted(r.case_id for r in ranking) == sorted(c.id for c in task.test_cases)
    scores = [r.score for r in ranking]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
