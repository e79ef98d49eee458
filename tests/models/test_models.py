import pytest
import torch

from napari_volseg.errors import VolsegError
from napari_volseg.models import MODEL_PRESETS, build_model, count_parameters, model_config


@pytest.mark.parametrize("name, expected", [("seed-net1", 22_578_946), ("seed-net2", 5_602_306)])
def test_seed_networks_have_the_reported_parameter_counts(name, expected):
    assert count_parameters(build_model(model_config(name))) == expected


def test_cpu_lean_is_much_smaller_and_every_preset_keeps_the_shape():
    assert count_parameters(build_model(model_config("cpu-lean"))) < 2_000_000
    x = torch.randn(1, 2, 16, 32, 32)
    for name in MODEL_PRESETS:
        model = build_model(model_config(name, in_channels=2, num_classes=3)).eval()
        with torch.no_grad():
            assert model(x).shape == (1, 3, 16, 32, 32)


def test_seed_net1_norms_only_the_encoder_and_ends_in_a_3x3x3_conv():
    model = build_model(model_config("seed-net1"))
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.down.modules()) == 8
    assert not any(
        isinstance(m, torch.nn.BatchNorm3d) for m in list(model.bottom.modules()) + list(model.dec.modules())
    )
    assert model.head.kernel_size == (3, 3, 3)


def test_unknown_model_preset_is_a_clear_error():
    with pytest.raises(VolsegError, match="unknown model preset 'net3'"):
        model_config("net3")
