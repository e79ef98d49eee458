"""Classify volumes with a classifier checkpoint: NIfTI or ``.npy`` files, or arrays, to class probabilities."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_volseg.classify import checkpoint as cckpt
from napari_volseg.engine.device import resolve_device, set_threads
from napari_volseg.errors import VolsegError
from napari_volseg.io import volumes


@dataclass(frozen=True)
class Prediction:
    """The predicted class of one volume and the probability of every class (in the checkpoint's class order)."""

    source: str
    label: str
    probabilities: dict[str, float]


class Classifier:
    """A loaded classifier: ``probabilities(volumes)`` for arrays ``(N, z, y, x)`` or one ``(z, y, x)``, values 0-1."""

    def __init__(self, path: str | os.PathLike, device: str = "auto"):
        loaded = cckpt.load(path)
        self.classes = loaded.classes
        self.shape = loaded.model_config.input_shape
        self.device = resolve_device(device)
        self.model = loaded.build_model().to(self.device)
        self.checkpoint = loaded

    @torch.no_grad()
    def probabilities(self, volumes: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(N, classes)`` (``(classes,)`` for one volume)."""
        volumes = np.asarray(volumes, dtype=np.float32)
        single = volumes.ndim == 3
        batch = volumes[None] if single else volumes
        if batch.shape[1:] != self.shape:
            raise VolsegError(
                f"this classifier takes {'x'.join(map(str, self.shape))} volumes (values 0-1); "
                f"got {'x'.join(map(str, batch.shape[1:]))}"
            )
        logits = self.model(torch.from_numpy(np.ascontiguousarray(batch)).unsqueeze(1).to(self.device))
        probs = torch.softmax(logits, dim=1).cpu().numpy()
        return probs[0] if single else probs

    def predict(self, volume: np.ndarray, source: str = "") -> Prediction:
        probs = self.probabilities(volume)
        return Prediction(
            source, self.classes[int(np.argmax(probs))], dict(zip(self.classes, map(float, probs), strict=True))
        )


def load_volume(path: str | os.PathLike) -> np.ndarray:
    """A ``(z, y, x)`` float32 volume from a volume file (canonical axes, ``io.volumes``) or a ``.npy`` array (as
    stored)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise VolsegError(f"no such file: {path}")
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise VolsegError(f"{path.name} is not a readable .npy array ({exc})") from exc
        if data.ndim != 3 or not np.issubdtype(data.dtype, np.number):
            raise VolsegError(f"{path.name} holds a {data.ndim}D {data.dtype} array; expected a 3D volume")
        return data.astype(np.float32)
    if not volumes.is_volume_path(path):
        raise VolsegError(f"{path.name}: classify .npy arrays or volumes ({volumes.describe_formats()})")
    volume = volumes.read(path)
    if volume.data.ndim != 3:
        raise VolsegError(f"{path.name} has {volume.channels} channels; the classifier takes one")
    return volume.data.astype(np.float32)


def predict_files(
    model: str | os.PathLike, files: Sequence[str | os.PathLike], device: str = "auto", threads: int | None = None
) -> Iterator[Prediction]:
    """Classify each file in turn (the model is loaded once)."""
    set_threads(threads)
    classifier = Classifier(model, device)
    for path in files:
        yield classifier.predict(load_volume(path), str(path))
