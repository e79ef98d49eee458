"""3D U-Nets: one configurable network and named presets (see :mod:`napari_volseg.models.registry`)."""

from napari_volseg.models.registry import MODEL_PRESETS, build_model, count_parameters, model_config
from napari_volseg.models.unet3d import ModelConfig, UNet3D

__all__ = ["MODEL_PRESETS", "ModelConfig", "UNet3D", "build_model", "count_parameters", "model_config"]
