"""Inference: MONAI sliding window with Gaussian blending, optional mirror TTA, back to the source grid.

Memory stays bounded: the window runs on the plan's (coarser) grid, the blended probabilities
live on the CPU, and only the foreground channel of a two-class task is resampled to the source
grid (:func:`napari_volseg.preprocess.invert`), never full-resolution logits of every class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from napari_volseg import postprocess as post
from napari_volseg import preprocess
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.config import InferConfig
from napari_volseg.engine.events import Progress
from napari_volseg.errors import SeriesChoiceError, VolsegError
from napari_volseg.io import volumes
from napari_volseg.io.geometry import Volume
from napari_volseg.outputs import check_writable
from napari_volseg.preprocess import Box

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; asking for an absent device is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VolsegError("device 'cuda' was asked for but no CUDA GPU is available (use --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise VolsegError("device 'mps' was asked for but Apple's MPS backend is not available")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise VolsegError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def available_devices() -> list[str]:
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def cpu_cores() -> int:
    """The cores this process may use (its affinity where the system says it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(threads: int | None) -> int:
    """Set torch's CPU threads explicitly (default: every core this process may use)."""
    if threads is None:
        threads = cpu_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


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
    use_amp = device.type == "cuda"
    for axes in flips:
        xi = torch.flip(x, axes) if axes else x
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
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
        """``checkpoint``: a loaded checkpoint, its path, or a model name (``volseg models``). ``config``
        replaces the settings the checkpoint's preset predicts with; ``overrides`` that are not None
        (``overlap=``, ``tta=``, ``device=`` ...) change single ones. Every prediction gets the
        checkpoint's post-processing (:mod:`napari_volseg.postprocess`) unless ``postprocess`` is False."""
        if not isinstance(checkpoint, ckpt.Checkpoint):
            from napari_volseg.zoo.registry import resolve  # a model name (msd-heart) works as well as a path

            checkpoint = ckpt.load(resolve(checkpoint))
        self.checkpoint = checkpoint
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


LABEL_FOLDERS = ("labelstr", "labelsts")


def collect_inputs(inputs: Sequence[str | os.PathLike], series: str | None = None) -> list[Path]:
    """The scans to predict: volume files named directly (NIfTI, NRRD, MetaImage, a DICOM file: its series), DICOM
    series folders, and folders of scans (an MSD task folder: its imagesTs/ or imagesTr/).

    A folder of DICOM series in subfolders gives one input per subfolder; several series side by side in one folder
    need ``series`` (else ``SeriesChoiceError`` lists them). Files in an MSD ``labelsTr/`` or ``labelsTs/`` folder
    are refused: they are labels, not images.
    """
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += _folder_inputs(p, series)
        elif p.exists():
            files.append(p)
        else:
            raise VolsegError(f"no such input: {p}")
    if not files:
        raise VolsegError(f"no scans found in the inputs ({volumes.describe_formats()})")
    for f in files:
        if f.absolute().parent.name.lower() in LABEL_FOLDERS:
            raise VolsegError(f"{f.parent.name}/{f.name} is a label file; predict the image (imagesTr/ or imagesTs/)")
    return files


def _folder_inputs(folder: Path, series: str | None) -> list[Path]:
    for sub in (folder / "imagesTs", folder / "imagesTr", folder):
        found = sorted(f for f in sub.glob("*") if volumes.is_scan_file(f) and not f.name.startswith("._"))
        if found:
            return found
    if volumes.format_of(folder) != "dicom":
        return []
    listed = volumes.list_series(folder)
    if len(listed) <= 1 or series is not None:
        return [folder]
    folders = sorted({Path(os.path.commonpath([str(f) for f in s.files])) for s in listed})
    if len(folders) == len(listed) and folder not in folders:
        return folders
    raise SeriesChoiceError(
        f"{folder.name} holds {len(listed)} DICOM series: "
        + "; ".join(s.describe() for s in listed)
        + ". Choose one with --series UID",
        listed,
    )


def output_paths(
    files: Sequence[Path], out_dir: Path, out_format: str = "source", series: str | None = None
) -> list[Path]:
    """``out_dir/<case>.<ext>`` for each input (:func:`io.volumes.labels_name`: the input's own format, NIfTI for a
    DICOM series, or ``out_format``); refused when two inputs share an output name or an output would overwrite an
    input (``--out`` set to the inputs' own folder)."""
    if out_format == "dicom-seg":
        not_dicom = [f.name for f in files if volumes.format_of(f) != "dicom"]
        if not_dicom:
            raise VolsegError(f"--out-format dicom-seg needs DICOM inputs; {not_dicom[0]} is not a DICOM series")
    targets: dict[Path, Path] = {}
    for f in files:
        like = volumes.read_geometry(f, series) if volumes.format_of(f) == "dicom" else None  # headers: the name
        target = (out_dir / volumes.labels_name(f, out_format, like)).absolute()
        if target in targets:
            raise VolsegError(
                f"{targets[target]} and {f} would both be written to {target.name}; predict them into separate folders"
            )
        if target.exists() and target.samefile(f):
            raise VolsegError(
                f"the prediction of {f.name} would overwrite it: choose an output folder apart from the inputs"
            )
        targets[target] = f
    return list(targets)


def predict_files(
    checkpoint: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: InferConfig | None = None,
    *,
    out_format: str = "source",
    series: str | None = None,
    **overrides,
) -> Iterator[Progress]:
    """Segment each input with a model (path, name or MONAI bundle folder) and write ``out_dir/<case>.<ext>`` in
    that input's own world geometry (``out_format``: :data:`io.volumes.OUT_FORMATS`; ``dicom-seg`` writes a DICOM
    Segmentation referencing a DICOM input's series). ``series`` picks the DICOM series of a folder holding several.
    The output folder, the inputs and the model are all checked before the first prediction; ``Progress.item`` is
    the file written."""
    from napari_volseg.zoo.backend import open_model

    out = check_writable(out_dir, folder=True, what="prediction folder")
    files = collect_inputs(inputs, series)
    targets = output_paths(files, out, out_format, series)
    predictor = open_model(checkpoint, config, **overrides)
    names = dict(getattr(predictor, "labels", {}) or {})
    for i, (path, target) in enumerate(zip(files, targets, strict=True)):
        image = volumes.read(path, series=series)
        prediction = predictor.predict(image)
        volumes.write_labels(target, prediction.labels, image.geometry, names)
        yield Progress(done=i + 1, total=len(files), item=str(target))
    predictor.release()
