"""What the Predict widget used to compute, now core functions tested without Qt (issue 25): which cases a scope
names, a dropped scan predicted and scored, the means apart for seen and unseen cases, saving and exporting."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_volseg import metrics
from napari_volseg.engine.predict import predict_volume
from napari_volseg.engine.provenance import Provenance
from napari_volseg.errors import VolsegError
from napari_volseg.evaluate import (
    NOTHING_TO_EXPORT,
    NOTHING_TO_SAVE,
    CaseResult,
    export_scores,
    mean_text,
    table_values,
    write_predictions,
)
from napari_volseg.io import decathlon, volumes
from napari_volseg.io.scopes import NEVER_TRAINED_ON, cases_in_scope
from napari_volseg.zoo.backend import open_model


def test_scopes_name_the_cases_and_a_model_that_lists_none_says_so(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    ids = [c.id for c in task.cases]
    assert cases_in_scope(task, "current case", current=ids[2]) == [ids[2]]
    assert cases_in_scope(task, "current case") == [ids[0]]
    assert cases_in_scope(task, NEVER_TRAINED_ON, trained=frozenset(ids[:4])) == ids[4:]
    assert cases_in_scope(task, "validation cases", validation=task.cases[1:3]) == ids[1:3]
    assert cases_in_scope(task, "all cases") == ids + [c.id for c in task.test_cases]
    with pytest.raises(VolsegError, match="does not list the cases of .* it trained on: choose 'all cases'"):
        cases_in_scope(task, NEVER_TRAINED_ON)


def test_a_dropped_scan_is_predicted_scored_and_starred_by_its_name(tiny_ct_task, tiny_checkpoint):
    task = decathlon.load_task(tiny_ct_task)
    trained = sorted(Provenance.read(tiny_checkpoint).train_cases)
    case = task.case(trained[0])
    image, truth = case.load()
    model = open_model(tiny_checkpoint)
    result = predict_volume(model, image, case.id, truth.data)
    assert result.trained_on is True and result.model == str(tiny_checkpoint.resolve())
    assert result.labels.shape == image.data.shape and result.errors is not None
    [score] = result.scores
    assert score.dice == pytest.approx(metrics.dice(result.labels, truth.data)[0])
    unscored = predict_volume(model, image, "someone_else", truth.data[:-1])  # another grid: no score
    assert unscored.scores == [] and unscored.errors is None and unscored.trained_on is False


def _result(case, dice, trained=False):
    labels = np.zeros((4, 4, 4), np.uint8)
    score = metrics.ClassScore(label=1, dice=dice, hd95=1.0, empty=False, pred_ml=1.0, true_ml=2.0)
    return CaseResult(case, labels, None, [score], trained_on=trained, model="m")  # no geometry: never written


def test_means_keep_the_models_training_cases_apart():
    assert mean_text([_result("a", 0.8), _result("b", 0.6)]) == "mean Dice over 2 case(s): 0.7000"
    assert mean_text([]) == ""
    assert mean_text([_result("a", 0.5), _result("b", 0.9, trained=True)]) == (
        "mean Dice over 1 case(s) it never trained on: 0.5000; over its 1 training case(s) (*): 0.9000"
    )
    assert [d for _, d in table_values(_result("a", 0.8), [1])] == [4, 2, 1, 1]


def test_saving_and_exporting_check_first_and_write_in_the_scans_format(tiny_ct_task, tiny_checkpoint, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    case = task.cases[0]
    image, truth = case.load()
    result = predict_volume(open_model(tiny_checkpoint), image, case.id, truth.data)
    with pytest.raises(VolsegError, match=NOTHING_TO_SAVE):
        write_predictions([], tmp_path / "none")
    [written] = write_predictions([result], tmp_path / "out")
    assert written.name == f"{case.id}.nii.gz"
    np.testing.assert_array_equal(volumes.read(written).data, result.labels)
    with pytest.raises(VolsegError, match=NOTHING_TO_EXPORT):
        export_scores([], task.labels, tmp_path / "s.csv")
    path, cases = export_scores([result], task.labels, tmp_path / "s.csv")
    rows = list(csv.DictReader(path.open()))
    assert cases == 1 and rows[0]["case"] == case.id and float(rows[0]["dice"]) == pytest.approx(result.scores[0].dice)


def test_a_training_scan_dropped_under_another_name_is_known_by_its_digest(tiny_ct_task, tiny_checkpoint, tmp_path):
    """Issue 26 item 5: a training case dropped under another name was scored as if it were unseen; the checkpoint
    now lists its training scans' file digests, and a renamed copy is starred."""
    import shutil

    from napari_volseg.engine.provenance import Provenance
    from napari_volseg.io.volumes import file_digest

    task = decathlon.load_task(tiny_ct_task)
    provenance = Provenance.read(tiny_checkpoint)
    trained = sorted(provenance.train_cases)
    assert len(provenance.train_digests) == len(trained)  # written by the run itself
    renamed = shutil.copy(task.case(trained[0]).image_path, tmp_path / "patient_7.nii.gz")
    image = volumes.read(renamed)
    model = open_model(tiny_checkpoint)
    assert predict_volume(model, image, "patient_7", digest=file_digest(renamed)).trained_on is True
    assert predict_volume(model, image, "patient_7").trained_on is False  # by name alone it is not
    unseen = next(c for c in task.cases if c.id not in provenance.train_cases)
    assert provenance.trained_on("patient_8", file_digest(unseen.image_path)) is False
    assert file_digest(tmp_path) is None


def test_the_shipped_heart_model_lists_its_training_scans_digests():
    from napari_volseg.engine.provenance import Provenance
    from napari_volseg.zoo.registry import resolve

    provenance = Provenance.read(resolve("msd-heart"))
    assert len(provenance.train_digests) == len(provenance.train_cases) == 12


def test_a_scan_of_several_volumes_is_segmented_as_the_model_reads_it():
    """Issue 26 item 4: a single-channel model used channel [1] of a 4D scan in silence."""
    from napari_volseg.engine.predict import channels_to_predict

    a, b = np.zeros((2, 3, 4)), np.ones((2, 3, 4))
    assert channels_to_predict(2, "two", [a, b], 1, selected=False).shape == (2, 2, 3, 4)  # a two-channel model
    np.testing.assert_array_equal(channels_to_predict(1, "two", [a, b], 1, selected=True), b)  # the one chosen
    assert channels_to_predict(1, "one", [a], None, selected=False).shape == (2, 3, 4)  # a 3D scan
    with pytest.raises(VolsegError, match=r"two holds 2 volumes .* select the layer of the one to segment"):
        channels_to_predict(1, "two", [a, b], 1, selected=False)  # not chosen: no volume picked in silence
    with pytest.raises(VolsegError, match="the model reads 3 channels and two holds 2"):
        channels_to_predict(3, "two", [a, b], 0, selected=True)
