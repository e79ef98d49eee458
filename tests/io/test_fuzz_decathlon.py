"""Fuzzed `dataset.json` documents (wrong types, unsafe paths, missing files, duplicate cases, odd
labels): load_task gives a sound Task or one TaskFormatError line, never another exception."""

import json
import os

import pytest
from conftest import one_line_volseg_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_volseg.config import TrainConfig
from napari_volseg.io import decathlon

CASES = ("a", "b", "c")
anything = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
paths = (
    st.sampled_from(
        [f"./imagesTr/{c}.nii.gz" for c in CASES]
        + [f"labelsTr/{c}.nii.gz" for c in CASES]
        + ["imagesTs/t.nii.gz", "imagesTr/missing.nii.gz", "../outside.nii.gz", "imagesTr/../../x.nii.gz"]
        + ["/etc/passwd", "", "imagesTr", "imagesTr/a.nii.gz\x00", "é/ü.nii.gz", "x" * 300]
    )
    | anything
)
entries = st.fixed_dictionaries({}, optional={"image": paths, "label": paths}) | anything
name_maps = st.dictionaries(
    st.sampled_from(["0", "1", "2", "01", "-1", " 1", "x", "255", "256", "1_0"]),
    st.sampled_from(["background", "spleen", "", "  "]) | anything,
    max_size=4,
)
good_entries = st.sampled_from([{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in CASES])
good_labels = st.just({"0": "background", "1": "spleen"})
documents = st.fixed_dictionaries(  # each key mostly sound, sometimes broken: most documents fail on one thing
    {
        "training": st.lists(good_entries, min_size=1, max_size=3, unique_by=str)
        | st.lists(good_entries, min_size=1, max_size=3, unique_by=str)
        | st.lists(good_entries | entries, max_size=5)
        | anything
    },
    optional={
        "name": st.just("Task09_Spleen") | anything,
        "description": anything,
        "labels": good_labels | good_labels | name_maps | anything,
        "modality": st.just({"0": "CT"}) | st.just({"0": "CT"}) | name_maps | anything,
        "test": st.just(["imagesTs/t.nii.gz"])
        | st.lists(paths | st.fixed_dictionaries({"image": paths}), max_size=3)
        | anything,
    },
)


@pytest.fixture(scope="module")
def task_root(tmp_path_factory):
    """A task folder whose files exist (empty: load_task reads no voxel)."""
    root = tmp_path_factory.mktemp("fuzz") / "Task"
    for sub, names in (("imagesTr", CASES), ("labelsTr", CASES), ("imagesTs", ("t",))):
        (root / sub).mkdir(parents=True)
        for name in names:
            (root / sub / f"{name}.nii.gz").write_bytes(b"")
    (root.parent / "outside.nii.gz").write_bytes(b"")
    return root


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.one_of(documents, documents, documents, anything, st.binary(max_size=20)))
def test_fuzzed_dataset_json_gives_a_sound_task_or_one_line(task_root, document):
    blob = document if isinstance(document, bytes) else json.dumps(document).encode()
    (task_root / "dataset.json").write_bytes(blob)
    task = one_line_volseg_error(lambda: decathlon.load_task(task_root))
    if task is None:
        return
    root = task_root.resolve()
    cases = task.cases + task.test_cases
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        for path in (case.image_path, case.label_path):
            assert path is None or (path.is_file() and path.is_relative_to(root) and os.path.isabs(path))
    assert 0 in task.labels and len(task.labels) >= 2 and task.num_classes >= 2
    one_line_volseg_error(lambda: decathlon.training_split(task, TrainConfig(val_cases=1)))
