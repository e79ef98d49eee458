"""Inference: MONAI sliding window with Gaussian blending, optional mirror TTA, back to the source grid.

Memory stays bounded: the window runs on the plan's (coarser) grid, the blended probabilities
live on the CPU, and only the foreground channel of a two-class task is resampled to the source
grid (:func:`napari_volseg.preprocess.invert`), never full-resolution logits of every class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from napari_volseg import postprocess as post
from napari_volseg import preprocess
from napari_volseg.config import InferConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.device import amp_dtype, resolve_device, set_threads
from napari_volseg.engine.provenance import Provenance
from napari_volseg.io.geometry import Volume
from napari_volseg.preprocess import Box

log = logging.getLogger(__name__)


def _roi(patch: Sequence[int], divisor: int) -> tuple[int, int, int]:
    return tuple(max(divisor, int(p) // divisor * divisor) for p in patch)


@torch.no_grad()
def window_probabilities(
    model: torch.nn.Module,
    image_czyx: np.ndarray,
    roi: Sequence[int],
    config: InferConfig,
    device: torch.device,
    mirror_axes: Sequence[int] = (),
) -> torch.Tensor:
    """Softmax probabilities ``(classes, z, y, x)`` (float32, CPU) of one preprocessed image.

    With ``config.tta`` the probabilities are averaged over every mirroring along ``mirror_axes``
    (0 = z, 1 = y, 2 = x): the axes the net was trained mirrored on. Mirroring along others would
    show it anatomy it never saw (measured: hippocampus Dice 0.89 -> 0.61), so they are never used.
    """
    model.eval()
    roi = _roi(roi, getattr(model, "module", model).config.divisor)
    # Volumes smaller than the window are padded with each channel's minimum, as the patch sampler
    # pads training patches (MONAI would pad with 0, a value the net never saw outside a volume).
    shape = image_czyx.shape[1:]
    pads = [max(0, r - n) for r, n in zip(roi, shape, strict=True)]
    if any(pads):
        lows = image_czyx.reshape(image_czyx.shape[0], -1).min(axis=1)
        padded = np.empty((image_czyx.shape[0],) + tuple(n + p for n, p in zip(shape, pads, strict=True)), np.float32)
        padded[:] = lows[:, None, None, None]
        padded[(slice(None),) + tuple(slice(p // 2, p // 2 + n) for p, n in zip(pads, shape, strict=True))] = image_czyx
        image_czyx = padded
    x = torch.from_numpy(np.ascontiguousarray(image_czyx))[None]
    axes = sorted({int(a) + 2 for a in mirror_axes}) if config.tta else []
    flips = [tuple(a for i, a in enumerate(axes) if mask >> i & 1) for mask in range(2 ** len(axes))]
    total = None
    dtype = amp_dtype(device)
    for axes in flips:
        xi = torch.flip(x, axes) if axes else x
        with torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = sliding_window_inference(
                xi,
                roi_size=roi,
                sw_batch_size=config.sw_batch_size,
                predictor=model,
                overlap=config.overlap,
                mode="gaussian",
                sw_device=device,
                device=torch.device("cpu"),
            )
        probs = torch.softmax(logits.float(), dim=1)
        probs = torch.flip(probs, axes) if axes else probs
        total = probs if total is None else total + probs
    probs = (total / len(flips))[0]
    if any(pads):
        probs = probs[(slice(None),) + tuple(slice(p // 2, p // 2 + n) for p, n in zip(pads, shape, strict=True))]
    return probs.contiguous()


def locate(
    model: torch.nn.Module, locator: ckpt.Locator, image: Volume, config: InferConfig, device: torch.device
) -> Box | None:
    """Run a cascade's locator on the coarse grid; the box of what it finds (its largest piece where the anatomy is
    one piece: :attr:`~napari_volseg.engine.checkpoint.Locator.one_piece`), grown by its margin."""
    prepared = preprocess.apply(locator.plan, image)
    probs = window_probabilities(model, prepared.image, locator.patch, config, device)  # no mirror axes: no TTA
    found = preprocess.invert(probs, prepared) > 0
    if locator.one_piece:  # the box of that one piece, all of it (roi_box's own pieces are 6-connected)
        found = post.largest_component(found)
        box = preprocess.roi_box(found, image.spacing, locator.margin_mm, keep=0.0)
    else:
        box = preprocess.roi_box(found, image.spacing, locator.margin_mm)
    if box is None or locator.max_extent_mm is None:
        return box
    return preprocess.cap_box(box, found, image.spacing, locator.max_extent_mm)


@dataclass
class Prediction:
    labels: np.ndarray
    """uint8 ``(z, y, x)`` on the source volume's canonical grid, post-processed as the checkpoint says."""
    probabilities: np.ndarray | None = None
    """Foreground probability (two classes) or per-class probabilities on the plan grid, if asked for."""


class Predictor:
    """A loaded checkpoint ready to segment volumes (the backend of napari-volseg's own checkpoints)."""

    def __init__(
        self,
        checkpoint: ckpt.Checkpoint | str | os.PathLike,
        config: InferConfig | None = None,
        *,
        postprocess: bool = True,
        **overrides,
    ):
        """``checkpoint``: a loaded checkpoint or its file (names are the zoo's: ``zoo.backend.open_model``).
        ``config`` replaces the settings the checkpoint's preset predicts with; ``overrides`` that are not None
        (``overlap=``, ``tta=``, ``device=`` ...) change single ones. Every prediction gets the
        checkpoint's post-processing (:mod:`napari_volseg.postprocess`) unless ``postprocess`` is False."""
        if not isinstance(checkpoint, ckpt.Checkpoint):
            checkpoint = ckpt.load(checkpoint)
        self.checkpoint = checkpoint
        self.provenance = Provenance.of(checkpoint)
        self.in_channels = checkpoint.model_config.in_channels
        preset = self.checkpoint.preset
        self.config = replace(config or preset.infer, **{k: v for k, v in overrides.items() if v is not None})
        set_threads(self.config.threads)
        self.device = resolve_device(self.config.device)
        self.model = self.checkpoint.build_model().to(self.device).eval()
        self.postprocess = self.checkpoint.postprocess if postprocess else post.PostProcess()
        self.plan = self.checkpoint.plan
        self.roi = preset.train.patch_size
        self.mirror_axes = preset.train.mirror_axes
        if self.config.tta and not self.mirror_axes:
            log.warning("test-time mirroring skipped: this model was trained without mirroring")
        locator = self.checkpoint.locator
        self.locator_model = locator.build_model().to(self.device).eval() if locator is not None else None

    @property
    def labels(self) -> dict[int, str]:
        return self.checkpoint.labels

    def predict_prepared(self, prepared: preprocess.Prepared) -> torch.Tensor:
        return window_probabilities(self.model, prepared.image, self.roi, self.config, self.device, self.mirror_axes)

    def locate(self, image: Volume) -> Box | None:
        """A cascade's region of interest in ``image`` (source canonical voxels); ``None`` without a
        locator, or when the locator finds nothing (the main net then sees the whole volume)."""
        locator = self.checkpoint.locator
        if locator is None:
            return None
        return locate(self.locator_model, locator, image, self.config, self.device)

    def predict(self, image: Volume, keep_probabilities: bool = False) -> Prediction:
        prepared = preprocess.apply(self.plan, image, box=self.locate(image))
        probs = self.predict_prepared(prepared)
        labels = post.apply(preprocess.invert(probs, prepared), self.postprocess)
        kept = None
        if keep_probabilities:
            kept = (probs[1] if probs.shape[0] == 2 else probs).numpy()
        return Prediction(labels=labels, probabilities=kept)

    def release(self) -> None:
        """Free the model (and CUDA memory) once predictions are done."""
        self.model = None
        self.locator_model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
