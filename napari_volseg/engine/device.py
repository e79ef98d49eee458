"""The one owner of where work runs: the device, the CPU threads and the mixed-precision dtype, for training and
inference alike (the trainer, the predictor, the classifier and the promptable models ask here)."""

from __future__ import annotations

import os

import torch

from napari_volseg.config import DEVICES
from napari_volseg.errors import VolsegError


def _mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; asking for an absent device is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VolsegError("device 'cuda' was asked for but no CUDA GPU is available (use --device auto or cpu)")
    if name == "mps" and not _mps():
        raise VolsegError("device 'mps' was asked for but Apple's MPS backend is not available")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise VolsegError(f"unknown device {name!r}; use {', '.join(DEVICES)}")
    return torch.device(name)


def available_devices() -> list[str]:
    """The devices of :data:`~napari_volseg.config.DEVICES` this machine has: what every face offers."""
    present = {"auto": True, "cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps()}
    return [d for d in DEVICES if present.get(d, False)]


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


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The mixed-precision dtype on ``device``, or None for full fp32: bf16 on a CUDA GPU that supports it (no loss
    scaling needed), else fp16 on CUDA; never on the CPU (no native bf16 there: ~100x slower) nor on MPS."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
