"""Model backends: one interface for every kind of model a face can predict with.

A face (CLI, Predict widget) calls :func:`open_model` with a name, a file or a MONAI bundle folder
and gets a :class:`SegmentationModel`: ``predict(volume)`` returns labels on the volume's own
canonical ``(z, y, x)`` grid, whatever preprocessing the model needs. napari-volseg checkpoints are
run by :class:`~napari_volseg.engine.infer.Predictor` (its Plan, cascade, TTA); imported MONAI
bundles by :class:`BundlePredictor` (MONAI's own transforms, inverted with ``Invertd``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from napari_volseg.config import InferConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.device import resolve_device, set_threads
from napari_volseg.engine.infer import Prediction, Predictor
from napari_volseg.engine.predict import SegmentationModel
from napari_volseg.engine.provenance import Provenance
from napari_volseg.errors import VolsegError
from napari_volseg.io.geometry import Volume
from napari_volseg.zoo.bundle_import import BUNDLE_FORMAT, BundleModel, is_bundle, load_bundle_model, read_bundle
from napari_volseg.zoo.registry import resolve

ZYX_FROM_XYZ = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
"""Swaps index axes: canonical ``(z, y, x)`` indices -> ``(x, y, z)``."""


def open_model(model: str | os.PathLike, config: InferConfig | None = None, **overrides) -> SegmentationModel:
    """Load ``model`` (a registered name, a checkpoint file or a MONAI bundle folder) for prediction.

    ``config`` / ``overrides`` (``overlap=``, ``device=``, ``tta=``; ``None`` means unset) change the
    inference settings the model carries; a bundle ignores ``tta`` (it was not trained mirrored here).
    """
    path = resolve(model)
    if path.is_dir() and is_bundle(path):
        return BundlePredictor(read_bundle(path), config, source=path, **overrides)
    meta = ckpt.read_meta(path)
    if meta.get("format") == BUNDLE_FORMAT:
        return BundlePredictor(load_bundle_model(path), config, source=path, **overrides)
    if "interactive" in meta:
        raise VolsegError(
            f"{Path(path).name} is a promptable model (clicks, boxes, scribbles): use it in the Prompts tab or "
            "`volseg interact`, and a segmentation model here"
        )
    return Predictor(ckpt.load(path), config, **overrides)


class BundlePredictor:
    """An imported MONAI bundle: its transforms, its sliding window, softmax, inverted back, argmax."""

    mirror_axes: tuple[int, ...] = ()

    def __init__(
        self, model: BundleModel, config: InferConfig | None = None, *, source: Path | None = None, **overrides
    ):
        settings = {"overlap": model.inferer["overlap"], "sw_batch_size": model.inferer["sw_batch_size"]}
        if config is not None:
            settings.update(overlap=config.overlap, sw_batch_size=config.sw_batch_size, device=config.device)
        settings.update({k: v for k, v in overrides.items() if v is not None and k != "tta"})
        self.config = InferConfig(**{k: v for k, v in settings.items() if k in InferConfig.__dataclass_fields__})
        set_threads(self.config.threads)
        self.device = resolve_device(self.config.device)
        self.model = model
        self.labels = model.labels
        self.in_channels = int(model.network.get("kwargs", {}).get("in_channels", 1))
        self.provenance = Provenance(str(source) if source else model.name)
        self.network = model.build_network().to(self.device)

    def _preprocessing(self):
        from monai import transforms

        steps = [getattr(transforms, t["name"])(keys="image", **t["args"]) for t in self.model.transforms]
        return transforms.Compose(steps)

    @torch.no_grad()
    def predict(self, image: Volume, keep_probabilities: bool = False) -> Prediction:
        """Labels ``(z, y, x)`` on ``image``'s canonical grid; probabilities (if kept) on that grid too."""
        from monai.data import MetaTensor
        from monai.inferers import sliding_window_inference
        from monai.transforms import Invertd

        data = image.data.astype(np.float32, copy=False)
        data = data[None] if data.ndim == 3 else data
        affine = image.geometry.canonical_affine_xyz @ ZYX_FROM_XYZ
        preprocessing = self._preprocessing()
        item = preprocessing({"image": MetaTensor(torch.from_numpy(np.ascontiguousarray(data)), affine=affine)})
        logits = sliding_window_inference(
            item["image"][None],
            roi_size=self.model.inferer["roi_size"],
            sw_batch_size=self.config.sw_batch_size,
            predictor=self.network,
            overlap=self.config.overlap,
            mode=self.model.inferer["mode"],
            sw_device=self.device,
            device=torch.device("cpu"),
        )
        item["pred"] = torch.softmax(logits[0].float(), dim=0)
        invert = Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=False)
        probs = torch.as_tensor(invert(item)["pred"]).float()
        labels = probs.argmax(dim=0).to(torch.uint8).numpy()
        kept = (probs[1] if probs.shape[0] == 2 else probs).numpy() if keep_probabilities else None
        return Prediction(labels=labels, probabilities=kept)

    def release(self) -> None:
        self.network = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def provenance(model: str | os.PathLike) -> Provenance:
    """Which file a model name or path is, and what it trained on, from its header alone; a name that resolves to
    nothing stays as given and lists no case (predicting reports its own errors)."""
    try:
        path = resolve(model)
    except Exception:  # noqa: BLE001 - a model that cannot be found says nothing; opening it says why
        return Provenance(str(model))
    return Provenance.read(path) if path.is_file() else Provenance(str(path.resolve()))
