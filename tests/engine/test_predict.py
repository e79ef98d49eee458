"""Predict-and-score as one generator: what the Predict widget, the demo and the benchmark show."""

import numpy as np
import pytest

from napari_volseg import metrics
from napari_volseg.config import Preset, TrainConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.predict import predict_cases
from napari_volseg.engine.provenance import Provenance
from napari_volseg.events import CasePredicted
from napari_volseg.io import decathlon, synthetic
from napari_volseg.models import build_model, model_config
from napari_volseg.planning import Plan


@pytest.fixture
def untrained(tmp_path):
    net = build_model(model_config("cpu-lean", 1, 2))
    preset = Preset(name="untrained", train=TrainConfig(patch_size=(16, 32, 32), threads=1))
    plan = Plan(target_spacing=(5.0, 2.0, 2.0))
    return ckpt.save(tmp_path / "m.safetensors", net, plan, {0: "background", 1: "spleen"}, preset=preset)


def test_predict_cases_yields_scored_results_on_the_source_grid(untrained, tmp_path):
    from conftest import TINY_CT

    task = decathlon.load_task(synthetic.write_task(tmp_path / "T", cases=2, kind="ct", spec=TINY_CT, test_cases=1))
    cases = task.cases + task.test_cases
    events = list(predict_cases(ckpt.load(untrained), task, cases))
    assert [(e.done, e.total) for e in events] == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(e, CasePredicted) for e in events)
    for event, case in zip(events, cases, strict=True):
        result = event.result
        image, truth = case.load()
        assert result.case == case.id and result.labels.shape == image.data.shape
        assert result.labels.dtype == np.uint8 and result.seconds > 0
        np.testing.assert_array_equal(result.geometry.affine, image.geometry.affine)
        if truth is None:
            assert result.scores == [] and result.errors is None  # a test case: nothing to score
        else:
            [score] = result.scores
            assert score.dice == pytest.approx(metrics.dice(result.labels, truth.data)[0])
            np.testing.assert_array_equal(result.errors, metrics.error_map(result.labels, truth.data))


def test_results_say_which_model_and_whether_it_trained_on_the_case(tmp_path):
    """A shipped model scored on the task it came from: its training cases are marked (their Dice reads high);
    another task's model, or one that lists no cases, marks none."""
    from conftest import TINY_CT

    from napari_volseg.zoo.backend import open_model, provenance

    task = decathlon.load_task(synthetic.write_task(tmp_path / "T", cases=2, kind="ct", spec=TINY_CT))
    first, second = (c.id for c in task.cases)
    net = build_model(model_config("cpu-lean", 1, 2))
    preset = Preset(name="p", train=TrainConfig(patch_size=(16, 32, 32), threads=1))
    plan, labels = Plan(target_spacing=(5.0, 2.0, 2.0)), {0: "background", 1: "spleen"}
    path = ckpt.save(tmp_path / "m.safetensors", net, plan, labels, preset=preset, task=task.name, train_cases=[first])
    results = [e.result for e in predict_cases(open_model(path), task, task.cases)]
    assert [(r.case, r.trained_on, r.model) for r in results] == [
        (first, True, str(path.resolve())),
        (second, False, str(path.resolve())),
    ]
    other = ckpt.save(tmp_path / "o.safetensors", net, plan, labels, task="AnotherTask", train_cases=[first])
    assert provenance(other).trained_in(task.name) == set()
    assert provenance(tmp_path / "missing.safetensors").trained_in(task.name) == set()
    assert Provenance.of(ckpt.load(path)).trained_in(task.name) == {first} == provenance(path).trained_in(task.name)
    assert (provenance(path).trained_on(first), provenance(path).trained_on(second)) == (True, False)
    assert provenance(other).trained_on(first) is True and Provenance.read(tmp_path / "x").trained_on(first) is None
