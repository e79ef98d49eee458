"""MONAI bundle import: the bundle's own preprocessing, the same labels as MONAI's own inference, nothing unpickled."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_CT
from fakes import write_bundle

from napari_volseg.cli import main
from napari_volseg.io import nifti, synthetic
from napari_volseg.zoo.backend import BundlePredictor, open_model
from napari_volseg.zoo.bundle_import import BundleError, import_bundle, read_bundle


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    task = synthetic.write_task(tmp_path_factory.mktemp("ct") / "Task90_T", cases=1, kind="ct", spec=TINY_CT)
    return sorted((task / "imagesTr").glob("*.nii.gz"))[0]


def monai_inference(bundle, scan):
    """The bundle run by MONAI itself: its inference.json parsed by ConfigParser, its own objects on the file."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    network.eval()
    item = parser.get_parsed_content("preprocessing")({"image": str(scan)})
    with torch.no_grad():
        item["pred"] = parser.get_parsed_content("inferer")(item["image"][None], network)[0]
    parser.get_parsed_content("postprocessing")(item)  # SaveImaged writes <output_dir>/<case>_seg.nii.gz
    return nifti.load(next((bundle / "eval").glob("*_seg.nii.gz")), label=True).data


def test_imported_bundle_predicts_what_monai_predicts_with_the_bundles_own_preprocessing(scan, tmp_path):
    bundle = write_bundle(
        tmp_path / "spleen_ct_segmentation", str(scan), str(tmp_path / "spleen_ct_segmentation" / "eval")
    )
    theirs = monai_inference(bundle, scan)
    path = import_bundle(bundle, tmp_path / "spleen.safetensors")
    model = open_model(path)
    assert isinstance(model, BundlePredictor) and model.labels == {0: "background", 1: "spleen"}
    assert [t["name"] for t in model.model.transforms] == ["Orientationd", "Spacingd", "ScaleIntensityRanged"]
    ours = model.predict(nifti.load(scan)).labels
    assert ours.shape == theirs.shape == nifti.load(scan).data.shape
    assert 0.05 < ours.mean() < 0.95  # both classes present: the comparison means something
    np.testing.assert_array_equal(ours, theirs)


def test_cli_import_into_the_models_folder_then_predict_by_name(scan, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    bundle = write_bundle(tmp_path / "spleen_ct_segmentation")
    assert main(["import", "--monai-bundle", str(bundle)]) == 0
    assert (tmp_path / "cache" / "models" / "spleen_ct_segmentation.safetensors").is_file()
    assert main(["predict", "--model", "spleen_ct_segmentation", "--out", str(tmp_path / "pred"), str(scan)]) == 0
    written = nifti.load(tmp_path / "pred" / scan.name, label=True)
    assert written.geometry.same_grid(nifti.load(scan).geometry)
    assert main(["models"]) == 0
    assert "spleen_ct_segmentation (installed)" in capsys.readouterr().out


def test_a_bundle_folder_itself_works_as_a_model(scan, tmp_path):
    bundle = write_bundle(tmp_path / "b")
    ours = open_model(bundle).predict(nifti.load(scan)).labels
    imported = open_model(import_bundle(bundle, tmp_path / "b.safetensors")).predict(nifti.load(scan)).labels
    np.testing.assert_array_equal(ours, imported)


def edit_config(bundle, change):
    path = bundle / "configs" / "inference.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def test_expressions_and_unknown_transforms_are_refused_not_evaluated(tmp_path):
    bundle = write_bundle(tmp_path / "b")
    edit_config(bundle, lambda c: c["network_def"].update(channels="$__import__('os').system('touch pwned')"))
    with pytest.raises(BundleError, match="is an expression"):
        read_bundle(bundle)
    assert not (tmp_path / "pwned").exists()
    bundle = write_bundle(tmp_path / "c")
    edit_config(bundle, lambda c: c["preprocessing"]["transforms"].insert(2, {"_target_": "Lambdad", "keys": "image"}))
    with pytest.raises(BundleError, match="'Lambdad' is not supported"):
        read_bundle(bundle)
    bundle = write_bundle(tmp_path / "d")
    edit_config(bundle, lambda c: c["network_def"].update({"_target_": "SwinUNETR"}))
    with pytest.raises(BundleError, match="importable networks: UNet, BasicUNet, SegResNet"):
        read_bundle(bundle)


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_weights_that_are_not_plain_tensors_are_never_unpickled(tmp_path, capsys):
    bundle = write_bundle(tmp_path / "b")
    torch.save({"model": Payload()}, bundle / "models" / "model.pt")
    with pytest.raises(BundleError, match="not a plain state dict"):
        read_bundle(bundle)
    assert "unpickled!" not in capsys.readouterr().out
    assert main(["import", "--monai-bundle", str(bundle), "--out", str(tmp_path / "x.safetensors")]) == 1
