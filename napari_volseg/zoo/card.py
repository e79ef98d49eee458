"""Model cards: what a pretrained model is for, how it was made and how well it does.

A card is plain data stored as JSON under the ``card`` key of the checkpoint's safetensors metadata,
so it travels with the weights and can be read from the header alone (no tensor is loaded).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import safe_open

from napari_volseg.engine import checkpoint as ckpt

MSD_LICENCE = "CC-BY-SA-4.0"
MSD_ATTRIBUTION = (
    'A. L. Simpson et al., "A large annotated medical image dataset for the development and evaluation of '
    'segmentation algorithms", arXiv:1902.09063 (2019); M. Antonelli et al., "The Medical Segmentation Decathlon", '
    "Nature Communications 13, 4128 (2022)."
)
CARD_KEY = "card"
TRAINED_BY_KEY = "trained_by"
"""Checkpoint metadata: the command that trained the weights, when a script other than the card's
``command`` did (``bench/accuracy.py`` stamps the final checkpoints it writes)."""


@dataclass(frozen=True)
class HeldOut:
    """Dice of one held-out case, scored on its source grid (mean over foreground classes)."""

    case: str
    dice: float
    per_class: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCard:
    """The facts a user needs before trusting a model. Spacing is ``(z, y, x)`` in mm."""

    name: str
    description: str
    task: str
    classes: dict[int, str]
    modality: str
    expected_spacing_mm: tuple[float, float, float] | None
    training_data: str
    licence: str
    attribution: str
    command: str
    held_out: tuple[HeldOut, ...] = ()
    training: str = ""
    """How long and on what it trained (preset, budget, cases, machine)."""
    weights: str = ""
    """How the tensors are stored (e.g. float16)."""
    trained_by: str = ""
    """The command that trained the weights, when ``command`` only carded and installed them."""

    @property
    def mean_dice(self) -> float:
        return sum(h.dice for h in self.held_out) / len(self.held_out) if self.held_out else float("nan")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = {str(k): v for k, v in self.classes.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelCard:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["classes"] = {int(k): v for k, v in d.get("classes", {}).items()}
        d["held_out"] = tuple(HeldOut(**h) for h in d.get("held_out", ()))
        if d.get("expected_spacing_mm") is not None:
            d["expected_spacing_mm"] = tuple(float(s) for s in d["expected_spacing_mm"])
        return cls(**d)

    def summary(self) -> str:
        """One line: task, modality, classes and the held-out Dice."""
        classes = ", ".join(v for k, v in sorted(self.classes.items()) if k > 0)
        dice = f"held-out Dice {self.mean_dice:.3f} ({len(self.held_out)} cases)" if self.held_out else "not scored"
        return f"{self.task}, {self.modality}: {classes}; {dice}"


def read_card(path: str | os.PathLike) -> ModelCard | None:
    """The card in a checkpoint's header, or None when it has none (or is unreadable)."""
    raw = ckpt.read_meta(path).get(CARD_KEY)
    if not raw:
        return None
    try:
        return ModelCard.from_dict(json.loads(raw))
    except (ValueError, TypeError, KeyError):
        return None


def write_card(
    src: str | os.PathLike, dst: str | os.PathLike, card: ModelCard, *, dtype: torch.dtype | None = None
) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with ``card`` in its metadata, for shipping (see :func:`copy_checkpoint`)."""
    return copy_checkpoint(src, dst, {CARD_KEY: json.dumps(card.to_dict())}, dtype=dtype)


def trained_by(path: str | os.PathLike) -> str:
    """The command stamped into a checkpoint by :func:`copy_checkpoint` (``""``: none)."""
    return ckpt.read_meta(path).get(TRAINED_BY_KEY, "")


def copy_checkpoint(
    src: str | os.PathLike, dst: str | os.PathLike, meta_items: dict[str, str], *, dtype: torch.dtype | None = None
) -> Path:
    """Copy checkpoint ``src`` to ``dst`` (atomically) with ``meta_items`` added to its metadata.

    The optimizer state (``optim.*``) is dropped; ``dtype`` (e.g. ``torch.float16``) re-stores the
    floating-point weights, which load back into float32 networks unchanged in shape.
    """
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("optim.")}
    for key in ("optim_groups", "optim_shapes"):
        meta.pop(key, None)
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    meta.update(meta_items)
    return ckpt.write_atomic(dst, {k: v.contiguous() for k, v in tensors.items()}, meta)
