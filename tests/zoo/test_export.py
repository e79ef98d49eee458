"""Export: ONNX and TorchScript give the checkpoint's logits; bioimage.io validates; a MONAI bundle runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fakes import write_checkpoint

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.zoo.export import export
from napari_volseg.zoo.networks import ExportError, example_input

ATOL = 1e-4
"""Exported logits may differ from PyTorch's by float32 rounding of reordered sums: |difference| <= 1e-4."""


@pytest.fixture
def checkpoint(tmp_path):
    return write_checkpoint(tmp_path / "model.safetensors")


def reference_logits(path, spatial=(32, 48, 64)):
    net = ckpt.load(path).build_model().eval()
    x = example_input(net.config, spatial)
    with torch.no_grad():
        return x, net(x).numpy()


@pytest.mark.slow
def test_onnx_gives_the_checkpoints_logits_at_another_size(checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    files = export(checkpoint, "onnx", tmp_path / "net.onnx")
    assert [f.name for f in files] == ["net.onnx", "net.json"]
    x, expected = reference_logits(checkpoint)  # exported at 32^3, run at 32 x 48 x 64: dynamic spatial size
    got = ort.InferenceSession(str(files[0])).run(None, {"image": x.numpy()})[0]
    assert got.shape == expected.shape == (1, 2, 32, 48, 64)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    info = json.loads(files[1].read_text())
    assert info["plan"]["target_spacing"] == [2.0, 2.0, 2.0] and info["labels"] == {"0": "background", "1": "organ"}
    assert info["sliding_window"]["roi_size"] == [16, 32, 32] and "locator" not in info


@pytest.mark.slow
def test_torchscript_of_a_cascade_holds_both_nets_and_says_how_they_chain(tmp_path):
    path = write_checkpoint(tmp_path / "cascade.safetensors", cascade=True)
    files = export(path, "torchscript", tmp_path / "out" / "heart.pt")
    assert [f.name for f in files] == ["heart.pt", "heart.locator.pt", "heart.json"]
    x, expected = reference_logits(path)
    with torch.no_grad():
        got = torch.jit.load(str(files[0]))(x).numpy()
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    locator = ckpt.load(path).locator.build_model().eval()
    with torch.no_grad():
        np.testing.assert_allclose(torch.jit.load(str(files[1]))(x).numpy(), locator(x).numpy(), atol=ATOL, rtol=0)
    info = json.loads(files[2].read_text())
    assert info["locator"]["file"] == "heart.locator.pt" and info["locator"]["margin_mm"] == 10.0


def test_exports_state_the_post_processing_and_the_bundle_runs_it(tmp_path):
    """No exported network can keep the largest component: the JSON and the bioimage.io README say
    to; a MONAI bundle runs it (KeepLargestConnectedComponentd), checked on a two-blob label map."""
    from monai.bundle import ConfigParser

    from napari_volseg.postprocess import PostProcess

    decision = PostProcess((1,), "training labels", 12, pieces={1: 1})
    path = write_checkpoint(tmp_path / "m.safetensors", postprocess=decision)
    info = json.loads(export(path, "torchscript", tmp_path / "ts" / "m.pt")[-1].read_text())
    assert info["postprocess"]["largest_component"] == [1] and info["postprocess"]["rule"] == "training labels"
    assert "largest 26-connected component of class(es) 1" in info["steps"][-1]
    export(path, "monai-bundle", tmp_path / "bundle")
    parser = ConfigParser()
    parser.read_config(str(tmp_path / "bundle" / "configs" / "inference.json"))
    steps = parser["postprocessing"]["transforms"]
    keep = next(i for i, t in enumerate(steps) if t["_target_"] == "KeepLargestConnectedComponentd")
    transform = parser.get_parsed_content(f"postprocessing#transforms#{keep}")
    pred = torch.zeros((1, 12, 12, 12))
    pred[0, 1:6, 1:6, 1:6] = 1
    pred[0, 9:11, 9:11, 9:11] = 1  # a detached stray: removed
    assert int(transform({"pred": pred})["pred"].sum()) == 125
    assert (
        "post-processing: keep only the largest"
        in json.loads((tmp_path / "bundle" / "configs" / "metadata.json").read_text())["description"]
    )
    untouched = write_checkpoint(tmp_path / "raw.safetensors")
    raw = json.loads(export(untouched, "onnx", tmp_path / "raw.onnx")[-1].read_text())
    assert raw["postprocess"]["largest_component"] == [] and raw["steps"][-1].endswith(
        "none: use the labels as predicted"
    )


def test_a_cascade_is_refused_for_single_network_packages_with_one_line(tmp_path):
    path = write_checkpoint(tmp_path / "cascade.safetensors", cascade=True)
    with pytest.raises(ExportError, match="cascade .* export onnx or torchscript"):
        export(path, "bioimageio", tmp_path / "bio")


@pytest.mark.slow
def test_bioimageio_package_passes_the_spec_validator(checkpoint, tmp_path):
    spec = pytest.importorskip("bioimageio.spec")
    files = export(checkpoint, "bioimageio", tmp_path / "bio")
    assert {f.name for f in files} >= {"rdf.yaml", "weights_torchscript.pt", "test_input.npy", "test_output.npy"}
    descr = spec.load_description(files[0], perform_io_checks=True)
    summary = descr.validation_summary
    assert summary.status in ("valid-format", "passed"), summary.format()
    assert "zero_mean_unit_variance" in [p.id for p in descr.inputs[0].preprocessing]


@pytest.mark.slow
def test_monai_bundle_runs_in_monai_and_agrees_with_the_predictor(trained_ct_checkpoint, train_ct_task, tmp_path):
    """MONAI's ConfigParser builds the exported bundle's own objects; its labels match our Predictor's.

    Spacingd resamples through the affine where the plan resizes the cropped array, so the two differ
    at a few boundary voxels: Dice between them >= 0.95.
    """
    from monai.bundle import ConfigParser

    from napari_volseg import metrics
    from napari_volseg.engine.infer import Predictor
    from napari_volseg.io import nifti

    bundle = tmp_path / "bundle"
    files = export(trained_ct_checkpoint, "monai-bundle", bundle)
    assert {f.relative_to(bundle).as_posix() for f in files} >= {
        "configs/metadata.json",
        "configs/inference.json",
        "models/model.pt",
    }
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)  # a plain state dict
    assert set(state) == set(ckpt.load(trained_ct_checkpoint).state)
    scan = sorted((train_ct_task / "imagesTr").glob("*.nii.gz"))[-1]
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network")
    network.load_state_dict(state)
    network.eval()
    item = parser.get_parsed_content("preprocessing")({"image": str(scan)})
    with torch.no_grad():
        item["pred"] = parser.get_parsed_content("inferer")(item["image"][None], network)[0]
    parser.get_parsed_content("postprocessing")(item)
    theirs = nifti.load(next((bundle / "eval").glob("*_seg.nii.gz")), label=True).data
    ours = Predictor(trained_ct_checkpoint).predict(nifti.load(scan)).labels
    assert ours.sum() > 100  # the model found the organ: agreement is not two empty masks
    dice, _ = metrics.dice(theirs, ours)
    assert dice >= 0.95


def test_onnx_without_the_export_extra_says_how_to_install_it(checkpoint, tmp_path, monkeypatch, capsys):
    import sys

    from napari_volseg.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert main(["export", "--model", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("volseg: error: ONNX export needs") and "napari-volseg[export]" in err
    assert err.count("\n") == 1 and not (tmp_path / "x.onnx").exists()
