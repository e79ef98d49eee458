"""Medical Segmentation Decathlon task folders: ``dataset.json``, ``imagesTr/``, ``labelsTr/``, ``imagesTs/``.

:func:`load_task` reads only ``dataset.json`` and checks that the files it names exist inside
the folder; volumes are read when a case is asked for (:meth:`Case.load_image`,
:meth:`Case.load_label`, :meth:`Case.load`), so listing a 41-case CT task costs no memory.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_volseg.errors import GeometryMismatchError, LabelValueError, TaskFormatError
from napari_volseg.io import nifti

UNLABELLED_KEY = "unlabelled"
"""The ``dataset.json`` key that declares the label value of voxels nobody annotated (sparse labels),
e.g. ``"unlabelled": 255``; a training entry whose label holds it says ``"sparse": true``."""

# The seed report's fixed splits (train, validation), taken in dataset.json order as the report did.
SEED_SPLITS: dict[str, tuple[int, int]] = {"heart": (16, 4), "spleen": (32, 9)}


@dataclass(frozen=True)
class Case:
    """One case of a task: an image file and, for training cases, its label file.

    ``sparse``: the label leaves some voxels unannotated (value ``unlabelled``); such a case trains
    but never validates.
    """

    id: str
    image_path: Path
    label_path: Path | None
    label_names: dict[int, str] = field(default_factory=dict, compare=False, repr=False)
    modalities: dict[int, str] = field(default_factory=dict, compare=False, repr=False)
    unlabelled: int | None = field(default=None, compare=False, repr=False)
    sparse: bool = field(default=False, compare=False)

    def geometry(self) -> nifti.Geometry:
        """The image's geometry from its header alone (shape and spacing without reading voxels)."""
        return nifti.read_geometry(self.image_path)

    def load_image(self) -> nifti.Volume:
        """The image in canonical ``(z, y, x)``, or ``(c, z, y, x)`` for multi-modal tasks."""
        vol = nifti.load(self.image_path)
        if self.modalities and vol.channels != len(self.modalities):
            raise TaskFormatError(
                f"{self.id}: image has {vol.channels} channel(s) but dataset.json names "
                f"{len(self.modalities)} modalities"
            )
        return vol

    def load_label(self) -> nifti.Volume:
        """The label volume, values checked against the task's label names."""
        if self.label_path is None:
            raise TaskFormatError(f"{self.id} has no label file (a test case)")
        vol = nifti.load(self.label_path, label=True)
        if self.label_names:
            present = {int(v) for v in np.unique(vol.data)}
            unknown = sorted(present - set(self.label_names) - {self.unlabelled})
            if unknown:
                named = ", ".join(f"{k} {v}" for k, v in sorted(self.label_names.items()))
                if self.unlabelled is not None:
                    named += f"; unlabelled {self.unlabelled}"
                raise LabelValueError(
                    f"{self.label_path.name} holds label value(s) {unknown} not named in dataset.json ({named})"
                )
        return vol

    def load(self) -> tuple[nifti.Volume, nifti.Volume | None]:
        """Image and label (None for a test case), checked to lie on the same voxel grid."""
        image = self.load_image()
        if self.label_path is None:
            return image, None
        label = self.load_label()
        check_same_grid(image, label, self.id)
        return image, label


def check_same_grid(image: nifti.Volume | nifti.Geometry, label: nifti.Volume | nifti.Geometry, name: str = "") -> None:
    """Raise :class:`GeometryMismatchError` unless image and label share shape and affine."""
    who = f"{name}: " if name else ""
    gi, gl = getattr(image, "geometry", image), getattr(label, "geometry", label)
    if gi.source_shape != gl.source_shape:
        raise GeometryMismatchError(f"{who}image shape {gi.source_shape} differs from label shape {gl.source_shape}")
    tol = 1e-3 * max(1.0, max(gi.spacing_zyx))
    if not gi.same_grid(gl, tol_mm=tol):
        worst = float(np.abs(gi.affine - gl.affine).max())
        raise GeometryMismatchError(f"{who}image and label affines differ (by up to {worst:.4g} mm)")


@dataclass(frozen=True)
class Split:
    train: list[Case]
    val: list[Case]


@dataclass
class Task:
    """An MSD task: metadata from ``dataset.json`` and its cases (nothing loaded yet)."""

    root: Path
    name: str
    description: str
    modalities: dict[int, str]
    labels: dict[int, str]
    cases: list[Case]
    test_cases: list[Case]
    unlabelled: int | None = None
    """The declared label value of unannotated voxels (``dataset.json`` key ``"unlabelled"``), if any."""

    @property
    def num_classes(self) -> int:
        return max(self.labels) + 1 if self.labels else 2

    @property
    def kind(self) -> str:
        """``"ct"`` when the first modality is CT, else ``"mri"``."""
        first = self.modalities.get(0, "").upper()
        return "ct" if first == "CT" else "mri"

    def case(self, case_id: str) -> Case:
        for c in self.cases + self.test_cases:
            if c.id == case_id:
                return c
        raise TaskFormatError(f"task {self.name} has no case {case_id!r}")

    def split(
        self, mode: str = "seeded", val_fraction: float = 0.2, seed: int = 0, val_cases: int | None = None
    ) -> Split:
        """Train/validation split of the labelled cases.

        ``mode="seeded"``: a shuffle by ``seed`` (same seed, same split), ``val_cases`` cases (or
        ``val_fraction`` of them, at least one) for validation. ``mode="seed-report"``: the seed
        report's fixed split for this task (16/4 heart, 32/9 spleen) in ``dataset.json`` order.
        Sparse cases (some voxels unlabelled) always train: validation draws only from fully
        labelled ones, and a task with none of those trains on everything with no validation.
        """
        cases = list(self.cases)
        if mode == "seed-report":
            key = next((k for k in SEED_SPLITS if k in self.name.lower() or k in self.root.name.lower()), None)
            if key is None:
                raise TaskFormatError(f"the seed report has no fixed split for task {self.name}")
            n_train, n_val = SEED_SPLITS[key]
            if len(cases) < n_train + n_val:
                raise TaskFormatError(
                    f"the seed report's {key} split needs {n_train + n_val} cases; {self.name} has {len(cases)}"
                )
            return Split(train=cases[:n_train], val=cases[n_train : n_train + n_val])
        if mode != "seeded":
            raise TaskFormatError(f"unknown split mode {mode!r} (use 'seeded' or 'seed-report')")
        full = [c for c in cases if not c.sparse]
        if cases and not full:
            return Split(train=cases, val=[])
        if len(cases) < 2:
            raise TaskFormatError(f"task {self.name} needs at least 2 labelled cases to split, has {len(cases)}")
        n_val = val_cases if val_cases is not None else min(len(full), max(1, round(len(cases) * val_fraction)))
        if not 1 <= n_val < len(cases):
            raise TaskFormatError(f"cannot hold out {n_val} of {len(cases)} cases for validation")
        if n_val > len(full):
            raise TaskFormatError(f"cannot hold out {n_val} cases for validation: only {len(full)} are fully labelled")
        order = sorted(full, key=lambda c: c.id)
        random.Random(seed).shuffle(order)
        val_ids = {c.id for c in order[:n_val]}
        return Split(train=[c for c in cases if c.id not in val_ids], val=[c for c in cases if c.id in val_ids])


def case_id_of(path: Path) -> str:
    """``la_003`` for ``.../la_003.nii.gz``: the file name without its NIfTI suffix."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _inside(root: Path, rel: str, what: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise TaskFormatError(f"dataset.json: {what} path must be a non-empty string, got {rel!r}")
    if os.path.isabs(rel):
        raise TaskFormatError(f"dataset.json: {what} path {rel!r} is absolute; paths must stay inside the task folder")
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise TaskFormatError(f"dataset.json: {what} path {rel!r} points outside the task folder")
    return path


def _int_keyed(d: object, what: str) -> dict[int, str]:
    if not isinstance(d, dict):
        raise TaskFormatError(f'dataset.json: \'{what}\' must be an object like {{"0": "..."}}')
    try:
        return {int(k): str(v) for k, v in d.items()}
    except (TypeError, ValueError) as exc:
        raise TaskFormatError(f"dataset.json: '{what}' keys must be integers ({exc})") from exc


def load_task(folder: str | os.PathLike) -> Task:
    """Read an MSD task folder's ``dataset.json`` into a :class:`Task` (no volume is read).

    Raises :class:`TaskFormatError` when the folder or ``dataset.json`` is missing or malformed,
    when a path leaves the folder, or when a listed file does not exist.
    """
    root = Path(folder)
    if not root.is_dir():
        raise TaskFormatError(f"{root} is not a folder")
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise TaskFormatError(f"{root.name} is not an MSD task folder: it has no dataset.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskFormatError(f"{root.name}/dataset.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise TaskFormatError(f"{root.name}/dataset.json must hold a JSON object")
    labels = _int_keyed(meta.get("labels", {"0": "background", "1": "foreground"}), "labels")
    modalities = _int_keyed(meta.get("modality", {"0": "unknown"}), "modality")
    unlabelled = _unlabelled_value(meta, labels, root.name)
    training = meta.get("training", [])
    if not isinstance(training, list):
        raise TaskFormatError(f"{root.name}/dataset.json: 'training' must be a list")

    cases: list[Case] = []
    missing: list[str] = []
    for i, entry in enumerate(training):
        if not isinstance(entry, dict) or "image" not in entry:
            raise TaskFormatError(f"dataset.json: training entry {i} needs an 'image' path")
        image = _inside(root, entry["image"], f"training[{i}].image")
        label = _inside(root, entry["label"], f"training[{i}].label") if entry.get("label") else None
        for p in (image, label):
            if p is not None and not p.is_file():
                missing.append(os.path.relpath(p, root.resolve()))
        sparse = bool(entry.get("sparse", False)) and label is not None
        cases.append(Case(case_id_of(image), image, label, labels, modalities, unlabelled, sparse))
    test_cases = []
    for i, rel in enumerate(meta.get("test", []) or []):
        image = _inside(root, rel if isinstance(rel, str) else (rel or {}).get("image", ""), f"test[{i}]")
        if not image.is_file():
            missing.append(os.path.relpath(image, root.resolve()))
        test_cases.append(Case(case_id_of(image), image, None, labels, modalities, unlabelled))
    if missing:
        raise TaskFormatError(
            f"{root.name}: {len(missing)} file(s) listed in dataset.json are missing, e.g. {missing[0]}"
        )
    if not cases and not test_cases:
        raise TaskFormatError(f"{root.name}/dataset.json lists no cases")
    return Task(
        root=root,
        name=str(meta.get("name") or root.name),
        description=str(meta.get("description", "")),
        modalities=modalities,
        labels=labels,
        cases=cases,
        test_cases=test_cases,
        unlabelled=unlabelled,
    )


def _unlabelled_value(meta: dict, labels: dict[int, str], where: str) -> int | None:
    value = meta.get(UNLABELLED_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TaskFormatError(f"{where}/dataset.json: '{UNLABELLED_KEY}' must be a non-negative integer, got {value!r}")
    if value in labels:
        raise TaskFormatError(
            f"{where}/dataset.json: '{UNLABELLED_KEY}' value {value} is also the label of {labels[value]!r}"
        )
    return value


def is_task_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding a ``dataset.json`` (an MSD-layout task)."""
    p = Path(path)
    return p.is_dir() and (p / "dataset.json").is_file()


def write_dataset_json(root: Path, meta: dict) -> None:
    """Write ``dataset.json`` atomically (used by the synthetic task and downloads)."""
    tmp = root / ".dataset.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    os.replace(tmp, root / "dataset.json")
