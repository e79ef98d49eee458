"""The single source of the classifier's training defaults, and its named presets (``volseg classify train``)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields

from napari_volseg.errors import VolsegError
from napari_volseg.validation import short


@dataclass(frozen=True)
class ClassifyPreset:
    """How to train a 3D classifier: the model preset, the optimiser and the 3D digits it sees.

    ``train_copies`` / ``test_copies``: volumes per training / test digit; ``fresh``: new training copies every
    epoch (see :class:`napari_volseg.classify.digits3d.DigitsSource`); ``limit``: only the first ``limit`` digits of
    each part (quick checks, tests). ``minutes`` ends training early when set.
    """

    name: str
    description: str = ""
    model: str = "vgg13-3d"
    epochs: int = 60
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-5
    train_copies: int = 2
    test_copies: int = 2
    fresh: bool = False
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **overrides) -> ClassifyPreset:
        """A copy with settings replaced (``None`` values are ignored)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise VolsegError(
                f"unknown classifier setting(s): {short(', '.join(map(repr, sorted(map(str, unknown)))))}"
            )
        return dataclasses.replace(self, **changes)


CLASSIFY_PRESETS: dict[str, ClassifyPreset] = {
    p.name: p
    for p in (
        ClassifyPreset(
            name="seed-vgg13-3d",
            description="the seed report's recipe: vgg13-3d, 60 epochs, Adam 1e-5, batches of 32, the same "
            "2 volumes per training digit every epoch (3D MNIST: 10,000 volumes from 5,000 digits)",
        ),
        ClassifyPreset(
            name="fast-vgg13-3d",
            description="a CPU recipe: vgg13-3d-narrow (16-32-64-128), 15 epochs, Adam 1e-3, batches of 32, "
            "2 fresh volumes per training digit every epoch",
            model="vgg13-3d-narrow",
            epochs=15,
            lr=1e-3,
            fresh=True,
        ),
    )
}


def classify_preset(name: str) -> ClassifyPreset:
    if name not in CLASSIFY_PRESETS:
        raise VolsegError(f"unknown classifier training preset {name!r}; choose from {', '.join(CLASSIFY_PRESETS)}")
    return CLASSIFY_PRESETS[name]
