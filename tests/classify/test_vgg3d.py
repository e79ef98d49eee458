"""The seed's 3D classifier: exact parameter count, shapes, and its place in the model registry."""

import pytest
import torch

from napari_volseg import cli
from napari_volseg.errors import VolsegError
from napari_volseg.models import MODEL_PRESETS, build_model, count_parameters
from napari_volseg.models.registry import CLASSIFIER_PRESETS, classifier_config
from napari_volseg.models.vgg3d import VGG3D, VGG3DConfig


def test_vgg13_3d_has_the_seed_reports_parameter_count_and_layers():
    model = build_model(classifier_config("vgg13-3d"))
    assert isinstance(model, VGG3D) and count_parameters(model) == 14_104_982
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == 8
    assert sum(isinstance(m, torch.nn.MaxPool3d) for m in model.modules()) == 4
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 100), (100, 10)]


def test_classifiers_map_volumes_to_class_logits():
    x = torch.rand(3, 1, 16, 16, 16)
    for name in CLASSIFIER_PRESETS:
        with torch.no_grad():
            assert build_model(classifier_config(name)).eval()(x).shape == (3, 10)
    assert count_parameters(build_model(classifier_config("vgg13-3d-narrow"))) < 1_000_000


def test_classifiers_stay_out_of_the_segmentation_presets_and_bad_names_are_clear_errors():
    assert not set(CLASSIFIER_PRESETS) & set(MODEL_PRESETS)
    with pytest.raises(VolsegError, match="unknown classifier preset 'vgg11'"):
        classifier_config("vgg11")
    with pytest.raises(ValueError, match="multiple of"):
        VGG3DConfig(input_size=20)


def test_volseg_models_lists_the_classifier_with_its_count(capsys):
    assert cli.main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "14,104,982 parameters" in lines["vgg13-3d"] and "22,578,946" in lines["seed-net1"]
