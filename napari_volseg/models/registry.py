"""Model presets by name: the seed report's Networks 1 and 2 and a CPU-lean U-Net; its 3D classifier."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from napari_volseg.errors import VolsegError
from napari_volseg.models.unet3d import ModelConfig, UNet3D
from napari_volseg.models.vgg3d import VGG3D, VGG3DConfig

MODEL_PRESETS: dict[str, tuple[ModelConfig, str]] = {
    "seed-net1": (
        ModelConfig(widths=(32, 64, 128, 256), bottleneck=512),
        "seed report Network 1: 32-64-128-256, bottleneck 512, BatchNorm in the encoder, 3x3x3 head",
    ),
    "seed-net2": (
        ModelConfig(widths=(32, 64, 128), bottleneck=256),
        "seed report Network 2: 32-64-128, bottleneck 256",
    ),
    "cpu-lean": (
        ModelConfig(
            widths=(8, 16, 32, 64),
            bottleneck=128,
            norm="instance",
            encoder_norm=True,
            bottleneck_norm=True,
            decoder_norm=True,
            order="conv-norm-act",
            act="leakyrelu",
            final_kernel=1,
        ),
        "CPU-lean U-Net: 8-16-32-64, bottleneck 128, InstanceNorm + LeakyReLU everywhere, 1x1x1 head (2.3x the voxel rate of 16-wide on 2 cores)",
    ),
}

CLASSIFIER_PRESETS: dict[str, tuple[VGG3DConfig, str]] = {
    "vgg13-3d": (
        VGG3DConfig(),
        "seed report 3D MNIST classifier: VGG-13-like, 3D convs 64-128-256-512 (BatchNorm), 100-unit head, 16^3 in",
    ),
    "vgg13-3d-narrow": (
        VGG3DConfig(widths=(16, 32, 64, 128)),
        "vgg13-3d at a quarter of the width: 16-32-64-128, 100-unit head (about 15x faster on 2 cores)",
    ),
}
"""Volume classifiers (``volseg classify``), kept apart from the segmentation nets above."""


def classifier_config(name: str) -> VGG3DConfig:
    if name not in CLASSIFIER_PRESETS:
        raise VolsegError(f"unknown classifier preset {name!r}; choose from {', '.join(CLASSIFIER_PRESETS)}")
    return CLASSIFIER_PRESETS[name][0]


def model_config(name: str, in_channels: int = 1, num_classes: int = 2, deep_supervision: int = 0) -> ModelConfig:
    """The preset's config with the task's input channels and classes (and deep-supervised levels)."""
    if name not in MODEL_PRESETS:
        raise VolsegError(f"unknown model preset {name!r}; choose from {', '.join(MODEL_PRESETS)}")
    try:
        return replace(
            MODEL_PRESETS[name][0], in_channels=in_channels, num_classes=num_classes, deep_supervision=deep_supervision
        )
    except ValueError as exc:
        raise VolsegError(f"model {name!r}: {exc}") from None


def build_model(config: ModelConfig | VGG3DConfig) -> UNet3D | VGG3D:
    return VGG3D(config) if isinstance(config, VGG3DConfig) else UNet3D(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
