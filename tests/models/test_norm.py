"""The CPU instance norm's own backward: the same gradients as torch's, and used only where it is safe."""

import pytest
import torch
import torch.nn.functional as F

from napari_volseg.models.norm import _InstanceNorm, instance_norm_cpu
from napari_volseg.models.unet3d import InstanceNorm


@pytest.mark.parametrize("channels_last", [False, True])
def test_backward_passes_gradcheck_in_float64(channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 3, dtype=torch.float64) * 2 + 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last_3d)
    weight = torch.rand(3, dtype=torch.float64) + 0.5
    bias = torch.rand(3, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (x, weight, bias))
    assert torch.autograd.gradcheck(lambda *a: _InstanceNorm.apply(*a, 1e-5), inputs)


def test_gradients_match_torchs_group_norm_in_float32_channels_last():
    """Against float64 gradients, ours are as close as torch's own float32 ones (sums over 3,840 voxels)."""
    torch.manual_seed(1)
    x = (torch.randn(2, 8, 16, 20, 12) * 3 + 2).to(memory_format=torch.channels_last_3d)
    weight, bias = torch.rand(8) + 0.5, torch.randn(8)
    dy = torch.randn_like(x)
    exact = [t.double().requires_grad_() for t in (x, weight, bias)]
    reference = torch.autograd.grad(F.group_norm(exact[0], 8, *exact[1:], 1e-5), exact, dy.double())
    errors = {}
    for name, norm in (("torch", lambda *a: F.group_norm(a[0], 8, *a[1:])), ("ours", instance_norm_cpu)):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        y = norm(*leaves, 1e-5)
        assert y.is_contiguous(memory_format=torch.channels_last_3d)
        grads = torch.autograd.grad(y, leaves, dy)
        errors[name] = [
            float((g.double() - r).abs().max() / r.abs().max()) for g, r in zip(grads, reference, strict=True)
        ]
    assert all(ours <= max(2 * torchs, 1e-6) for ours, torchs in zip(errors["ours"], errors["torch"], strict=True))
    assert max(errors["ours"]) < 1e-5
    with torch.no_grad():
        assert torch.equal(instance_norm_cpu(x, weight, bias, 1e-5), F.group_norm(x, 8, weight, bias, 1e-5))


def test_own_backward_only_where_a_backward_runs_on_plain_tensors():
    from monai.data import MetaTensor

    weight, bias = torch.ones(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    x = torch.randn(1, 4, 4, 4, 4).to(memory_format=torch.channels_last_3d).requires_grad_()
    assert type(instance_norm_cpu(x, weight, bias, 1e-5).grad_fn).__name__ == "_InstanceNormBackward"
    with torch.no_grad():
        assert instance_norm_cpu(x, weight, bias, 1e-5).grad_fn is None
    # contiguous: the (N, voxels, C) view would cost two copies; torch's own op, gradients in x's layout
    flat = torch.randn(1, 4, 4, 4, 4, requires_grad=True)
    out = instance_norm_cpu(flat, weight, bias, 1e-5)
    assert type(out.grad_fn).__name__ != "_InstanceNormBackward"
    # traced (ONNX export traces): torch's op, which exporters know
    norm = InstanceNorm(4)
    graph = str(torch.jit.trace(norm, x.detach(), check_trace=False).graph)
    assert "PythonOp" not in graph and "group_norm" in graph
    # a MetaTensor's output comes back as a view, which the in-place activation after the norm may not modify
    meta = MetaTensor(torch.randn(1, 4, 4, 4, 4)).requires_grad_()
    out = instance_norm_cpu(meta, weight, bias, 1e-5)
    assert type(out.grad_fn).__name__ != "_InstanceNormBackward"
    F.leaky_relu(out, 0.01, inplace=True).sum().backward()
    assert meta.grad is not None
