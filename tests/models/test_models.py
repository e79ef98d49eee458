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


def test_deep_supervision_trains_lower_levels_and_predicts_with_the_top_head_only():
    from napari_volseg.models.unet3d import ModelConfig

    config = model_config("cpu-lean", 1, 3, deep_supervision=2)
    model = build_model(config)
    x = torch.randn(2, 1, 16, 32, 16)
    outs = model.train()(x)
    assert [tuple(o.shape) for o in outs] == [(2, 3, 16, 32, 16), (2, 3, 8, 16, 8), (2, 3, 4, 8, 4)]
    assert model.eval()(x).shape == (2, 3, 16, 32, 16)
    # the heads belong to the network (a checkpoint keeps them) and the config says so
    assert ModelConfig(**config.to_dict()).deep_supervision == 2
    assert any(k.startswith("aux_heads.1.") for k in model.state_dict())
    plain_dict = model_config("cpu-lean", 1, 3).to_dict()
    assert "deep_supervision" not in plain_dict  # earlier versions of the package still read it
    assert ModelConfig(**plain_dict).deep_supervision == 0
    plain = build_model(model_config("cpu-lean", 1, 3))
    assert torch.is_tensor(plain.train()(x)) and not list(plain.aux_heads)


def test_deep_supervision_deeper_than_the_net_is_a_clear_error():
    with pytest.raises(VolsegError, match="at most 3 levels"):
        model_config("cpu-lean", deep_supervision=4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_instance_norm_matches_torch_and_loads_its_weights(channels_last):
    """cpu-lean's instance norm runs as a per-channel GroupNorm on the CPU (no channels-last copies): the same
    function as ``InstanceNorm3d(affine=True)``, and checkpoints written with either load strictly into the other."""
    from torch import nn

    from napari_volseg.models.unet3d import InstanceNorm

    torch.manual_seed(0)
    reference = nn.InstanceNorm3d(6, affine=True)
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    ours = InstanceNorm(6)
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 6, 8, 12, 10) * 3 + 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last_3d)
    assert torch.allclose(ours(x), reference(x), atol=1e-5)
    cfg = model_config("cpu-lean", 1, 2)
    assert any(isinstance(m, InstanceNorm) for m in build_model(cfg).modules())
