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
from typing import TYPE_CHECKING

import numpy as np

from napari_volseg.config import VAL_FRACTION
from napari_volseg.errors import GeometryMismatchError, LabelValueError, TaskFormatError
from napari_volseg.io import volumes
from napari_volseg.io.geometry import Geometry, Volume
from napari_volseg.outputs import atomic_write
from napari_volseg.validation import short, show

if TYPE_CHECKING:  # the io layer reads the training settings, it does not import the engine
    from napari_volseg.config import TrainConfig

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

    def geometry(self) -> Geometry:
        """The image's geometry from its header alone (shape and spacing without reading voxels)."""
        return volumes.read_geometry(self.image_path)

    def load_image(self) -> Volume:
        """The image in canonical ``(z, y, x)``, or ``(c, z, y, x)`` for multi-modal tasks."""
        vol = volumes.read(self.image_path)
        if self.modalities and vol.channels != len(self.modalities):
            raise TaskFormatError(
                f"{self.id}: image has {vol.channels} channel(s) but dataset.json names "
                f"{len(self.modalities)} modalities"
            )
        return vol

    def load_label(self) -> Volume:
        """The label volume, values checked against the task's label names."""
        if self.label_path is None:
            raise TaskFormatError(f"{self.id} has no label file (a test case)")
        vol = volumes.read(self.label_path, label=True)
        if self.label_names:
            present = {int(v) for v in np.unique(vol.data)}
            unknown = sorted(present - set(self.label_names) - ({self.unlabelled} if self.sparse else set()))
            if unknown:
                named = ", ".join(f"{k} {v}" for k, v in sorted(self.label_names.items()))
                if self.unlabelled in unknown:
                    named += f'; unlabelled {self.unlabelled} only where the entry says "sparse": true'
                raise LabelValueError(
                    f"{self.label_path.name} holds label value(s) {unknown} not named in dataset.json ({named})"
                )
        return vol

    def load(self) -> tuple[Volume, Volume | None]:
        """Image and label (None for a test case), checked to lie on the same voxel grid."""
        image = self.load_image()
        if self.label_path is None:
            return image, None
        label = self.load_label()
        check_same_grid(image, label, self.id)
        return image, label


def check_same_grid(image: Volume | Geometry, label: Volume | Geometry, name: str = "") -> None:
    """Raise :class:`GeometryMismatchError` unless image and label put the same voxels at the same world positions
    (the same shape and affine; or, for files of two formats that store voxels in different orders, such as a DICOM
    series and its NRRD segmentation, the same canonical grid)."""
    who = f"{name}: " if name else ""
    gi, gl = getattr(image, "geometry", image), getattr(label, "geometry", label)
    tol = 1e-3 * max(1.0, max(gi.spacing_zyx))
    if gi.same_grid(gl, tol_mm=tol) or gi.same_world_grid(gl, tol_mm=tol):
        return
    if gi.shape_zyx != gl.shape_zyx:
        raise GeometryMismatchError(f"{who}image shape {gi.source_shape} differs from label shape {gl.source_shape}")
    worst = float(np.abs(gi.canonical_affine_xyz - gl.canonical_affine_xyz).max())
    raise GeometryMismatchError(f"{who}image and label affines differ (by up to {worst:.4g} mm)")


@dataclass(frozen=True)
class Split:
    """Labelled cases by role: ``train`` fit the weights, ``val`` choose the checkpoint (and the
    post-processing), ``test`` are touched by neither (benchmarks and model cards score them)."""

    train: list[Case]
    val: list[Case]
    test: list[Case] = field(default_factory=list)


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


def training_split(task: Task, train: TrainConfig) -> Split:
    """The one decision of which labelled cases train and which validate, from the training
    settings' ``split``, ``seed`` and ``val_cases``; the trainer, the napari session, the CLI, the
    demo and the benchmarks all ask here, so that one preset trains on one split everywhere.

    ``split="seeded"``: a shuffle by ``seed`` (same seed, same split); its first ``test_cases`` cases
    are held out from everything, the next ``val_cases`` (or :data:`VAL_FRACTION` of the rest, at
    least one, none for a single case; 0 for none) validate, the rest train. Sparse cases (labels that
    leave voxels unannotated) always train: test and validation cases are drawn from the fully
    labelled ones only, and the default validation count shrinks to what they allow.
    ``split="seed-report"``: the seed report's fixed split for this task (16/4 heart, 32/9 spleen)
    in ``dataset.json`` order.
    """
    cases = list(task.cases)
    if train.split == "seed-report":
        key = next((k for k in SEED_SPLITS if k in task.name.lower() or k in task.root.name.lower()), None)
        if key is None:
            raise TaskFormatError(f"the seed report has no fixed split for task {task.name}")
        n_train, n_val = SEED_SPLITS[key]
        if len(cases) < n_train + n_val:
            raise TaskFormatError(
                f"the seed report's {key} split needs {n_train + n_val} cases; {task.name} has {len(cases)}"
            )
        if train.test_cases:
            raise TaskFormatError("the seed report's split is fixed: train.test_cases must be 0 with it")
        return Split(train=cases[:n_train], val=cases[n_train : n_train + n_val])
    if train.split != "seeded":
        raise TaskFormatError(f"unknown split mode {train.split!r} (use 'seeded' or 'seed-report')")
    if not cases:
        raise TaskFormatError(f"task {task.name} has no labelled case to train on")
    full = [c for c in cases if not c.sparse]
    n_test = train.test_cases
    rest = len(cases) - n_test
    n_val = train.val_cases
    if n_val is None:
        n_val = min(max(1, round(rest * VAL_FRACTION)) if rest > 1 else 0, max(0, len(full) - n_test))
    if rest - n_val < 1:
        raise TaskFormatError(
            f"cannot hold out {n_test} test and {n_val} validation cases of {len(cases)}: none would train"
        )
    if n_test + n_val > len(full):
        raise TaskFormatError(
            f"cannot hold out {n_test} test and {n_val} validation cases: only {len(full)} of {len(cases)} "
            "are fully labelled (sparse cases always train)"
        )
    order = sorted(full, key=lambda c: c.id)
    random.Random(train.seed).shuffle(order)
    test_ids = {c.id for c in order[:n_test]}
    val_ids = {c.id for c in order[n_test : n_test + n_val]}
    return Split(
        train=[c for c in cases if c.id not in test_ids | val_ids],
        val=[c for c in cases if c.id in val_ids],
        test=[c for c in cases if c.id in test_ids],
    )


def case_id_of(path: Path) -> str:
    """``la_003`` for ``.../la_003.nii.gz``: the file name without its format's ending (``io.volumes.case_id``)."""
    return volumes.case_id(path)


def _inside(root: Path, rel: object, what: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise TaskFormatError(f"dataset.json: {what} path must be a non-empty string, got {show(rel)}")
    if os.path.isabs(rel):
        raise TaskFormatError(
            f"dataset.json: {what} path {show(rel)} is absolute; paths must stay inside the task folder"
        )
    try:
        path = (root / rel).resolve()
        inside = path.is_relative_to(root.resolve())
    except (OSError, ValueError) as exc:  # a NUL byte, an unencodable or over-long name, a symlink loop
        raise TaskFormatError(f"dataset.json: {what} path {show(rel)} is not a usable file name ({exc})") from exc
    if not inside:
        raise TaskFormatError(f"dataset.json: {what} path {show(rel)} points outside the task folder")
    return path


def _int_keyed(d: object, what: str, example: str) -> dict[int, str]:
    """``{"0": "background", ...}`` as ``{0: "background", ...}``: keys whole numbers, values names."""
    if not isinstance(d, dict) or not d:
        raise TaskFormatError(f"dataset.json: '{what}' must be a non-empty object like {example}")
    out: dict[int, str] = {}
    for key, value in d.items():
        if not (isinstance(key, str) and key.isdecimal() and len(key) <= 3 and str(int(key)) == key):
            raise TaskFormatError(f"dataset.json: '{what}' keys must be integers 0 to 999, got {show(key)}")
        if not isinstance(value, str) or not value.strip():
            raise TaskFormatError(f"dataset.json: '{what}' value of {key} must be a name, got {show(value)}")
        out[int(key)] = value
    return out


def _labels(d: object) -> dict[int, str]:
    labels = _int_keyed(d, "labels", '{"0": "background", "1": "spleen"}')
    if 0 not in labels or len(labels) < 2:
        raise TaskFormatError(
            "dataset.json: 'labels' must name the background (0) and at least one structure, "
            f'like {{"0": "background", "1": "spleen"}}; got {show(sorted(labels))}'
        )
    if max(labels) > 255:
        raise TaskFormatError(f"dataset.json: label values go up to 255, got {max(labels)}")
    return labels


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system
        return False


def _check_unique(root: Path, cases: list[Case]) -> None:
    seen: dict[str, Path] = {}
    for case in cases:
        if case.id in seen:
            a, b = (os.path.relpath(p, root.resolve()) for p in (seen[case.id], case.image_path))
            raise TaskFormatError(
                f"dataset.json lists case {case.id!r} twice ({a} and {b}); each case needs its own name"
            )
        seen[case.id] = case.image_path
        if case.label_path is not None and case.label_path == case.image_path:
            raise TaskFormatError(f"dataset.json: case {case.id!r} names the same file as its image and its label")


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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TaskFormatError(f"{root.name}/dataset.json is not valid JSON ({short(str(exc), 120)})") from exc
    except OSError as exc:
        raise TaskFormatError(f"cannot read {root.name}/dataset.json: {exc.strerror or exc}") from exc
    if not isinstance(meta, dict):
        raise TaskFormatError(f"{root.name}/dataset.json must hold a JSON object")
    labels = _labels(meta.get("labels", {"0": "background", "1": "foreground"}))
    modalities = _int_keyed(meta.get("modality", {"0": "unknown"}), "modality", '{"0": "CT"}')
    unlabelled = _unlabelled_value(meta, labels, root.name)
    training = meta.get("training", [])
    test = meta.get("test", [])
    for key, value in (("training", training), ("test", test)):
        if not isinstance(value, list):
            raise TaskFormatError(f"{root.name}/dataset.json: '{key}' must be a list")

    cases: list[Case] = []
    missing: list[str] = []
    for i, entry in enumerate(training):
        if not isinstance(entry, dict) or "image" not in entry:
            raise TaskFormatError(f"dataset.json: training entry {i} needs an 'image' path")
        image = _inside(root, entry["image"], f"training[{i}].image")
        if image.parent.name.lower() in ("labelstr", "labelsts"):
            raise TaskFormatError(f"dataset.json: training[{i}].image {entry['image']} is a label file (in labelsTr/)")
        label = _inside(root, entry["label"], f"training[{i}].label") if entry.get("label") else None
        for p in (image, label):
            if p is not None and not _is_file(p):
                missing.append(os.path.relpath(p, root.resolve()))
        sparse = _sparse_flag(entry, i, label is not None, unlabelled is not None)
        cases.append(Case(case_id_of(image), image, label, labels, modalities, unlabelled, sparse))
    test_cases = []
    for i, rel in enumerate(test):
        image = _inside(root, rel.get("image") if isinstance(rel, dict) else rel, f"test[{i}]")
        if not _is_file(image):
            missing.append(os.path.relpath(image, root.resolve()))
        test_cases.append(Case(case_id_of(image), image, None, labels, modalities, unlabelled))
    if missing:
        raise TaskFormatError(
            f"{root.name}: {len(missing)} file(s) listed in dataset.json are missing, e.g. {missing[0]}"
        )
    if not cases and not test_cases:
        raise TaskFormatError(f"{root.name}/dataset.json lists no cases")
    _check_unique(root, cases + test_cases)
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
    """The declared value of unannotated voxels: a whole number 0 to 65535 that names no class, in a
    task whose classes stay below 255 (the plan grid marks unannotated voxels 255)."""
    value = meta.get(UNLABELLED_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise TaskFormatError(
            f"{where}/dataset.json: '{UNLABELLED_KEY}' must be a whole number 0 to 65535, like 255; got {show(value)}"
        )
    if value in labels:
        raise TaskFormatError(
            f"{where}/dataset.json: '{UNLABELLED_KEY}' value {value} is also the label of {labels[value]!r}"
        )
    if max(labels) >= 255:
        raise TaskFormatError(f"{where}/dataset.json: a task with sparse labels keeps its label values below 255")
    return value


def _sparse_flag(entry: dict, i: int, labelled: bool, declared: bool) -> bool:
    """A training entry's ``"sparse"``: true or false, true only for a label in a task declaring ``unlabelled``."""
    sparse = entry.get("sparse", False)
    if not isinstance(sparse, bool):
        raise TaskFormatError(f"dataset.json: training[{i}].sparse must be true or false, got {show(sparse)}")
    if sparse and not labelled:
        raise TaskFormatError(f"dataset.json: training[{i}] is marked sparse but has no 'label'")
    if sparse and not declared:
        raise TaskFormatError(
            f"dataset.json: training[{i}] is marked sparse but the task declares no '{UNLABELLED_KEY}' value "
            f'(like "{UNLABELLED_KEY}": 255)'
        )
    return sparse


def is_task_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding an MSD ``dataset.json`` (nnU-Net v2's, with ``file_ending`` and no ``training``
    list, is a folder of scans to make a task of)."""
    p = Path(path) / "dataset.json"
    if not p.is_file():
        return False
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # a broken dataset.json: loading it says what is wrong
    return not (isinstance(meta, dict) and "file_ending" in meta and "training" not in meta)


def write_dataset_json(root: Path, meta: dict) -> None:
    """Write ``dataset.json`` atomically (used by the synthetic task and downloads)."""
    atomic_write(root / "dataset.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2), encoding="utf-8"))
