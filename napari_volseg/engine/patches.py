"""Training batches: patch sampling with foreground oversampling, augmentation, and a prefetching stream.

Every random choice of step ``s`` on rank ``r`` comes from a generator seeded by ``(seed, s, r)``,
so a batch is a pure function of its step: a prefetching thread pool (which keeps a GPU busy while
the next batches are cut and augmented) yields exactly the batches the plain loop would.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import RandAdjustContrast, RandAffined, RandGaussianSmooth, RandSimulateLowResolution
from monai.utils import convert_to_tensor

from napari_volseg import preprocess


@dataclass
class TrainCase:
    """A preprocessed training case with precomputed foreground voxel positions per class.

    ``annotated``: for a sparse label (some voxels :data:`~napari_volseg.preprocess.UNLABELLED`),
    positions of annotated voxels, where the non-foreground patches are centred; None when dense.
    """

    id: str
    image: np.ndarray
    label: np.ndarray
    foreground: dict[int, np.ndarray]
    pad_value: np.ndarray
    annotated: np.ndarray | None = None


def _positions(mask: np.ndarray, rng: np.random.Generator, keep: int) -> np.ndarray:
    where = np.argwhere(mask)
    if len(where) > keep:
        where = where[rng.choice(len(where), keep, replace=False)]
    return where.astype(np.int32)


def train_case(case_id: str, prepared: preprocess.Prepared, rng: np.random.Generator, keep: int = 20000) -> TrainCase:
    values = np.unique(prepared.label)
    fg = {int(k): _positions(prepared.label == k, rng, keep) for k in values if k not in (0, preprocess.UNLABELLED)}
    annotated = None
    if preprocess.UNLABELLED in values:
        annotated = _positions(prepared.label != preprocess.UNLABELLED, rng, keep)
    pad = prepared.image.reshape(prepared.image.shape[0], -1).min(axis=1)
    return TrainCase(case_id, prepared.image, prepared.label, fg, pad, annotated)


def effective_patch(patch: tuple[int, ...], shapes: list[tuple[int, ...]], divisor: int) -> tuple[int, int, int]:
    """The patch, shrunk along axes where the median volume is smaller (rounded down to a multiple of
    ``divisor``, at least one ``divisor``): a patch mostly made of padding costs time and teaches little."""
    median = np.median(np.array(shapes), axis=0)
    out = []
    for p, n in zip(patch, median, strict=True):
        size = min(int(p), int(n) // divisor * divisor)
        out.append(max(divisor, size))
    if all(s == divisor for s in out):  # a 1-voxel bottleneck cannot be instance-normalised
        longest = int(np.argmax(median))
        out[longest] = min(int(patch[longest]), 2 * divisor) if patch[longest] > divisor else out[longest]
    return tuple(out)


def batch_size(base: int, patch: tuple[int, ...], batch_voxels: int | None, most: int = 16) -> int:
    """``base`` patches per step, or more (up to ``most``) while they stay within ``batch_voxels``."""
    if not batch_voxels:
        return base
    return max(base, min(most, int(batch_voxels) // int(np.prod(patch))))


def sample_patch(case: TrainCase, patch: tuple[int, int, int], rng: np.random.Generator, foreground: bool):
    """Crop ``patch`` voxels around a random (or foreground) centre, padding outside the volume.

    A sparse case's random centres are annotated voxels: a patch with no annotation teaches nothing."""
    shape = np.array(case.label.shape)
    size = np.array(patch)
    centres = None
    if foreground and case.foreground:
        centres = case.foreground[rng.choice(sorted(case.foreground))]
    elif case.annotated is not None and len(case.annotated):
        centres = case.annotated
    if centres is not None:
        centre = centres[rng.integers(len(centres))]
        start = centre - size // 2 + rng.integers(-(size // 4), size // 4 + 1)
    else:
        start = np.array([rng.integers(min(0, n - p), max(0, n - p) + 1) for n, p in zip(shape, size, strict=True)])
    start = np.clip(start, np.minimum(0, shape - size), np.maximum(0, shape - size))
    src = tuple(slice(max(0, s), min(n, s + p)) for s, n, p in zip(start, shape, size, strict=True))
    dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start, strict=True))
    image = np.empty((case.image.shape[0],) + tuple(size), dtype=np.float32)
    image[:] = case.pad_value[:, None, None, None]
    label = np.zeros(tuple(size), dtype=np.uint8)
    image[(slice(None),) + dst] = case.image[(slice(None),) + src]
    label[dst] = case.label[src]
    return image, label


class Augmenter:
    """Flips, small rotations and scaling (MONAI ``RandAffined``), intensity scale/shift and noise;
    ``intensity="strong"`` adds nnU-Net's blur, simulated low resolution and gamma (MONAI transforms,
    nnU-Net's probabilities and ranges)."""

    def __init__(self, patch: tuple[int, int, int], mirror_axes: tuple[int, ...] = (), intensity: str = "basic"):
        self.mirror_axes = tuple(mirror_axes)
        self.strong = (
            [
                RandGaussianSmooth(sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=0.2),
                RandSimulateLowResolution(prob=0.25, zoom_range=(0.5, 1.0)),
                RandAdjustContrast(prob=0.1, gamma=(0.7, 1.5), invert_image=True, retain_stats=True),
                RandAdjustContrast(prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
            ]
            if intensity == "strong"
            else []
        )
        self.affine = RandAffined(
            keys=("image", "label"),
            prob=0.3,
            rotate_range=(0.26, 0.26, 0.26),
            scale_range=(0.15, 0.15, 0.15),
            mode=("bilinear", "nearest"),
            padding_mode="border",
            spatial_size=patch,
        )

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        self.affine.set_random_state(seed=int(rng.integers(2**31)))
        out = self.affine({"image": torch.from_numpy(image), "label": torch.from_numpy(label[None].astype(np.float32))})
        # plain tensors: a MetaTensor batch would run every op of the net through MONAI's __torch_function__
        img = convert_to_tensor(out["image"], track_meta=False).float()
        lab = convert_to_tensor(out["label"], track_meta=False).round().to(torch.uint8)[0]
        for axis in self.mirror_axes:
            if rng.random() < 0.5:
                img = torch.flip(img, (axis + 1,))
                lab = torch.flip(lab, (axis,))
        if rng.random() < 0.3:
            img = img * float(rng.uniform(0.85, 1.15)) + float(rng.uniform(-0.1, 0.1))
        if rng.random() < 0.15:
            gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
            img = img + torch.randn(img.shape, generator=gen) * float(rng.uniform(0.0, 0.1))
        for transform in self.strong:
            transform.set_random_state(seed=int(rng.integers(2**31)))
            img = convert_to_tensor(transform(img), track_meta=False).float()
        return img, lab


class BatchStream:
    """Batches by step number, computed in the caller's thread (``workers=0``) or prefetched by a
    thread pool ``workers`` wide (patch cutting and MONAI's affine warp release the GIL); pinned
    memory when the batches go to a GPU."""

    def __init__(
        self,
        cases: Sequence[TrainCase],
        patch: tuple[int, int, int],
        *,
        batch_size: int,
        fg_fraction: float,
        seed: int,
        rank: int = 0,
        augment: bool = True,
        mirror_axes: tuple[int, ...] = (),
        intensity: str = "basic",
        workers: int = 0,
        pin_memory: bool = False,
        case_weights: Sequence[float] | None = None,
    ):
        """``case_weights`` (one per case, any positive scale): how often each case is drawn; None: uniformly."""
        self.cases = list(cases)
        self.case_p = None if case_weights is None else np.asarray(case_weights, float) / float(np.sum(case_weights))
        self.patch = tuple(patch)
        self.batch_size = batch_size
        self.fg_fraction = fg_fraction
        self.seed = seed
        self.rank = rank
        self.augment = augment
        self.mirror_axes = tuple(mirror_axes)
        self.intensity = intensity
        self.workers = max(0, int(workers))
        self.pin_memory = pin_memory
        self._local = threading.local()  # MONAI transforms hold random state: one augmenter per thread
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="volseg-batch") if self.workers else None
        self._ahead: dict[int, Future] = {}

    def _augmenter(self) -> Augmenter:
        if not hasattr(self._local, "augmenter"):
            self._local.augmenter = Augmenter(self.patch, self.mirror_axes, self.intensity)
        return self._local.augmenter

    def make(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``step``: images ``(b, c, z, y, x)`` float32, labels ``(b, 1, z, y, x)`` int64."""
        rng = np.random.default_rng([self.seed, step, self.rank])
        images, labels = [], []
        for _ in range(self.batch_size):
            if self.case_p is None:
                case = self.cases[int(rng.integers(len(self.cases)))]
            else:
                case = self.cases[int(rng.choice(len(self.cases), p=self.case_p))]
            image, label = sample_patch(case, self.patch, rng, foreground=rng.random() < self.fg_fraction)
            if self.augment:
                image, label = self._augmenter()(image, label, rng)
            else:
                image, label = torch.from_numpy(image), torch.from_numpy(label)
            images.append(image)
            labels.append(label)
        x, y = torch.stack(images), torch.stack(labels)[:, None].long()
        if self.pin_memory:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pool is None:
            return self.make(step)
        for ahead in range(step, step + 2 * self.workers):
            if ahead not in self._ahead:
                self._ahead[ahead] = self._pool.submit(self.make, ahead)
        for old in [k for k in self._ahead if k < step]:
            self._ahead.pop(old).cancel()
        return self._ahead.pop(step).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._ahead.clear()
