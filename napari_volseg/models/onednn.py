"""Small-batch 3D convolutions through oneDNN on the CPU, where PyTorch's heuristic picks its slow reference path.

PyTorch sends a CPU ``conv3d`` to oneDNN only when the batch is above one or ``C * D * H`` of the input is above
20,480; a U-Net's deeper levels on a 64-cube (16 channels x 32 x 32) fall under it and run
``slow_conv3d_forward``, which took 77 % of an interactive forward pass. Measured on 2 cores (``cpu-lean`` with five
input channels, batch 1, channels-last): 64-cube 0.31 s -> 0.09 s, 80-cube 0.28 s -> 0.15 s. Written here because
the library's choice is the bottleneck; only eval-time forward passes of the interactive net use it.
"""

from __future__ import annotations

import types

import torch
from torch import nn


def _forward(self: nn.Conv3d, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if (
        input.device.type == "cpu"
        and input.dtype == torch.float32
        and self.padding_mode == "zeros"
        and not torch.is_grad_enabled()
    ):
        return torch.mkldnn_convolution(input, weight, bias, self.padding, self.stride, self.dilation, self.groups)
    return nn.Conv3d._conv_forward(self, input, weight, bias)


def use_onednn(model: nn.Module) -> nn.Module:
    """``model`` with every ``Conv3d`` running through oneDNN in gradient-free CPU passes (in place; returned)."""
    for module in model.modules():
        if type(module) is nn.Conv3d:
            module._conv_forward = types.MethodType(_forward, module)
    return model
