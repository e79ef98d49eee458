"""A network to a file: ONNX and TorchScript, each traced at a fixed pseudo-random input (the pieces the
``volseg export`` formats share: :mod:`~napari_volseg.zoo.export` and :mod:`~napari_volseg.zoo.bioimageio`)."""

from __future__ import annotations

from pathlib import Path

import torch

from napari_volseg.errors import VolsegError

ONNX_OPSET = 17
INSTALL_EXPORT = "pip install 'napari-volseg[export]'"


class ExportError(VolsegError):
    """A model cannot be exported in the asked format (or a package the format needs is missing)."""


def example_input(config, spatial: tuple[int, int, int] | None = None) -> torch.Tensor:
    """A fixed pseudo-random input ``(1, channels, z, y, x)``; sizes default to twice the net's divisor."""
    generator = torch.Generator().manual_seed(0)
    spatial = spatial or (2 * config.divisor,) * 3
    return torch.randn((1, config.in_channels, *spatial), generator=generator)


def onnx_file(net: torch.nn.Module, path: Path) -> Path:
    try:
        import onnx  # noqa: F401 - the exporter's own dependency, checked here for a one-line message
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx package: {INSTALL_EXPORT}") from exc
    axes = {0: "batch", 2: "z", 3: "y", 4: "x"}
    torch.onnx.export(
        net,
        (example_input(net.config),),
        str(path),
        dynamo=False,  # the TorchScript-based exporter: dynamic axes by name, seconds instead of minutes
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": axes, "logits": axes},
        opset_version=ONNX_OPSET,
    )
    return path


def trace_torchscript(net: torch.nn.Module, path: Path) -> Path:
    """Trace ``net`` at twice its divisor and save it; it has no shape-dependent branches, so any size runs."""
    traced = torch.jit.trace(net, example_input(net.config), check_trace=False)
    traced.save(str(path))
    return path
