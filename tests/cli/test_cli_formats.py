"""`volseg predict | evaluate | new-task` on the scans users have: NRRD, MetaImage and DICOM series beside NIfTI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from series_writer import write_series

from napari_volseg import cli
from napari_volseg.io import volumes


@pytest.fixture(scope="module")
def scans(tiny_ct_task, tmp_path_factory):
    """Two cases of the tiny CT task as NRRD, MetaImage (.mha) and DICOM series (one per subfolder)."""
    root = tmp_path_factory.mktemp("scans")
    made = {}
    for case in ("spleen_001", "spleen_002"):
        source = tiny_ct_task / "imagesTr" / f"{case}.nii.gz"
        image = sitk.ReadImage(str(source))
        for suffix in (".nrrd", ".mha"):
            (root / suffix[1:]).mkdir(exist_ok=True)
            sitk.WriteImage(image, str(root / suffix[1:] / f"{case}{suffix}"))
        write_series(root / "dicom" / case, volumes.read(source), modality="CT", seed=len(made))
        made[case] = source
    return root


def test_predict_writes_each_format_back_and_agrees_with_the_nifti(
    scans, tiny_ct_task, tiny_checkpoint, tmp_path, capsys
):
    reference = tmp_path / "nifti"
    assert (
        cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(reference), str(tiny_ct_task / "imagesTr")])
        == 0
    )
    for kind, suffix in (("nrrd", ".nrrd"), ("mha", ".mha"), ("dicom", ".nii.gz")):
        out = tmp_path / kind
        assert cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(scans / kind)]) == 0
        for case in ("spleen_001", "spleen_002"):
            written = volumes.read(out / f"{case}{suffix}", label=True)
            truth = volumes.read(reference / f"{case}.nii.gz", label=True)
            np.testing.assert_array_equal(written.data, truth.data)
            assert written.geometry.same_world_grid(truth.geometry, tol_mm=1e-3)


def test_predict_a_dicom_series_as_dicom_seg(scans, tiny_checkpoint, tmp_path):
    import highdicom

    out = tmp_path / "seg"
    series = scans / "dicom" / "spleen_001"
    assert (
        cli.main(
            ["predict", "--model", str(tiny_checkpoint), "--out", str(out), "--out-format", "dicom-seg", str(series)]
        )
        == 0
    )
    seg = highdicom.seg.segread(out / "spleen_001.dcm")
    source_uids = {volumes.read(series).geometry.source_meta["series_uid"]}
    referenced = {item.SeriesInstanceUID for item in seg.ReferencedSeriesSequence}
    assert referenced == source_uids


def test_cli_format_mistakes_are_one_line(scans, tiny_checkpoint, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for case in ("spleen_001", "spleen_002"):  # two series side by side in one folder
        for f in (scans / "dicom" / case).iterdir():
            (mixed / f"{case}_{f.name}").write_bytes(f.read_bytes())
    model = str(tiny_checkpoint)
    calls = [
        ["predict", "--model", model, "--out", str(tmp_path / "o1"), str(mixed)],
        ["predict", "--model", model, "--out", str(tmp_path / "o2"), "--out-format", "dicom-seg", str(scans / "nrrd")],
        ["predict", "--model", model, "--out", str(tmp_path / "o3"), "--series", "1.2.3", str(mixed)],
    ]
    for call in calls:
        capsys.readouterr()
        assert cli.main(call) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
    uid = volumes.list_series(scans / "dicom" / "spleen_002")[0].uid
    assert cli.main(["predict", "--model", model, "--out", str(tmp_path / "o4"), "--series", uid, str(mixed)]) == 0
    # two series of one folder never share a name: <folder>_s<SeriesNumber>, the UID's tail where numbers repeat
    assert [p.name for p in (tmp_path / "o4").iterdir()] == [volumes.series_case_id("mixed", None, uid) + ".nii.gz"]


def test_evaluate_scores_nrrd_predictions_against_nifti_labels(tiny_ct_task, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for case in ("spleen_001", "spleen_002"):
        truth = volumes.read(tiny_ct_task / "labelsTr" / f"{case}.nii.gz", label=True)
        volumes.write_labels(pred / f"{case}.nrrd", truth.data, truth.geometry)
    assert cli.main(["evaluate", "--pred", str(pred), "--truth", str(tiny_ct_task / "labelsTr")]) == 0
    out = capsys.readouterr().out
    assert "spleen_001" in out and "1.000" in out


def test_new_task_from_dicom_series_and_nrrd_scans(scans, tiny_ct_task, tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for f in (scans / "dicom" / "spleen_001").iterdir():
        (images / "spleen_001").mkdir(exist_ok=True)
        (images / "spleen_001" / f.name).write_bytes(f.read_bytes())
    (images / "spleen_002.nrrd").write_bytes((scans / "nrrd" / "spleen_002.nrrd").read_bytes())
    truth = volumes.read(tiny_ct_task / "labelsTr" / "spleen_001.nii.gz", label=True)
    volumes.write_labels(labels / "spleen_001.seg.nrrd", truth.data, truth.geometry)
    out = tmp_path / "Task50_Mine"
    call = ["new-task", "--images", str(images), "--labels", str(labels), "--out", str(out)]
    assert cli.main([*call, "--name", "mine", "--classes", "background,spleen", "--modality", "CT"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    [entry] = meta["training"]
    assert entry["image"] == "./imagesTr/spleen_001.nii.gz" and entry["source"] == str(
        (images / "spleen_001").absolute()
    )
    assert meta["test"] == [
        {"image": "./imagesTs/spleen_002.nii.gz", "source": str((images / "spleen_002.nrrd").absolute())}
    ]
    from napari_volseg.io.decathlon import load_task

    image, label = load_task(out).case("spleen_001").load()
    reference = volumes.read(tiny_ct_task / "imagesTr" / "spleen_001.nii.gz")
    np.testing.assert_array_equal(image.data, reference.data)
    np.testing.assert_array_equal(label.data, truth.data)
    assert image.geometry.same_world_grid(reference.geometry, tol_mm=1e-4)


def test_new_task_and_the_viewer_name_two_series_of_one_folder_alike(tiny_ct_task, tmp_path):
    from napari_volseg._napari.layers import file_layer_data

    export = tmp_path / "images" / "export"
    for number, case in ((3, "spleen_001"), (5, "spleen_002")):
        source = volumes.read(tiny_ct_task / "imagesTr" / f"{case}.nii.gz")
        write_series(export, source, modality="CT", seed=number, description=case, number=number)
    out = tmp_path / "Task51_Two"
    call = ["new-task", "--images", str(tmp_path / "images"), "--out", str(out), "--name", "two"]
    assert cli.main([*call, "--classes", "background,spleen", "--modality", "auto"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert [entry["image"] for entry in meta["test"]] == ["./imagesTs/export_s3.nii.gz", "./imagesTs/export_s5.nii.gz"]
    assert meta["modality"] == {"0": "CT"}  # guessed from the first series, chosen by its uid
    uid = next(s.uid for s in volumes.list_series(export) if s.number == 5)
    _, kwargs, _ = file_layer_data(export, uid)
    assert kwargs["name"] == "export_s5"
    assert volumes.labels_name(export, like=volumes.read_geometry(export, uid)) == "export_s5.nii.gz"


def test_a_series_in_a_subfolder_of_its_own_is_named_by_it_everywhere(scans, tmp_path):
    from napari_volseg._napari.layers import file_layer_data
    from napari_volseg.io.inputs import collect_inputs

    two = tmp_path / "two"
    for sub in ("a", "b"):
        shutil.copytree(scans / "dicom" / ("spleen_001" if sub == "a" else "spleen_002"), two / sub)
    assert [p.name for p in collect_inputs([two])] == ["a", "b"]  # what volseg predict writes: a.nii.gz, b.nii.gz
    uid = volumes.list_series(two / "b")[0].uid
    _, kwargs, _ = file_layer_data(two, uid)  # the folder dropped on napari, series b chosen
    assert kwargs["name"] == "b"
