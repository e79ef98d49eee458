"""A task from your own files: a folder of scans (and optionally some labels) -> an MSD-layout task.

Scans are NIfTI, NRRD or MetaImage files, or DICOM series (one per subfolder, or several in one folder): each is one
case. NIfTI files are linked as they are; every other format is converted to NIfTI in its own voxel order and world
geometry (the MSD layout is NIfTI), its source recorded in ``dataset.json`` (``"source"``, and ``"series"`` for a
DICOM series).

:func:`write_task_from_files` checks every input first (readable 3D images, each label on its
image's grid with only named values or the declared unlabelled value, no label without its image),
then builds the task in a hidden folder beside ``out`` and renames it into place: a failure leaves
nothing behind. NIfTI files are hard-linked where the file system allows, copied otherwise; images keep
their own orientation and suffix (``.nii`` or ``.nii.gz``). Labelled scans go to ``imagesTr/`` +
``labelsTr/``, the rest to ``imagesTs/`` (the cases left to annotate).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_volseg.errors import LabelValueError, TaskFormatError, UnsupportedShapeError
from napari_volseg.io import volumes
from napari_volseg.io.decathlon import UNLABELLED_KEY, check_same_grid, write_dataset_json
from napari_volseg.outputs import check_writable, shared_folder

MODALITIES = ("CT", "MRI")
AUTO = "AUTO"
"""``modality="auto"``: decided from the first scan's intensities (:func:`guess_modality`)."""
CT_BELOW = -500.0
"""A scan with values at or below this is CT (air is about -1000 HU); MRI intensities are not negative like that."""


def looks_like_ct(data: np.ndarray) -> bool:
    """Whether intensities look like CT: it holds air at about -1000 HU, an MRI nothing that low."""
    return float(np.min(data)) <= CT_BELOW


def guess_modality(scan: str | os.PathLike, series: str | None = None) -> str:
    """CT or MRI, from one scan's intensities (:func:`looks_like_ct`); ``series``: which DICOM series of a folder."""
    return "CT" if looks_like_ct(volumes.read(scan, series=series).data) else "MRI"


LABEL_SUFFIXES = ("_seg", "_label", "_labels", "_mask", "_gt", "_segmentation")
"""Endings of a label file named after its scan in the same folder (``case_seg.nii.gz`` beside ``case.nii.gz``)."""
IMAGE_FOLDERS = ("imagestr", "images", "image", "scans", "volumes")
LABEL_FOLDERS = ("labelstr", "labels", "label", "masks", "segmentations", "seg")
"""Folder names people give their scans and their labels (lower case; nnU-Net's ``imagesTr`` / ``labelsTr`` first)."""

DEFAULT_UNLABELLED = 255
"""The unlabelled value a new task declares (``"unlabelled": 255`` in its ``dataset.json``)."""

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SourceCase:
    """One scan found in the input folders; ``sparse``: its label holds the unlabelled value."""

    id: str
    image: Path
    label: Path | None
    sparse: bool = False
    series: str | None = None
    """The SeriesInstanceUID when ``image`` is a folder of several DICOM series."""


def parse_classes(text: str) -> dict[int, str]:
    """``"background,spleen"`` -> ``{0: "background", 1: "spleen"}`` (the first name is label 0)."""
    names = [n.strip() for n in text.split(",")]
    if len(names) < 2 or any(not n for n in names):
        raise TaskFormatError(
            f"the classes need at least two comma-separated names, e.g. background,spleen; got {text!r}"
        )
    if len(set(names)) != len(names):
        raise TaskFormatError(f"the class names must differ: {text!r}")
    if len(names) >= DEFAULT_UNLABELLED:
        raise TaskFormatError(f"at most {DEFAULT_UNLABELLED - 1} classes, got {len(names)}")
    return dict(enumerate(names))


def label_suffix_of(case: str) -> str | None:
    """The label ending of a file's case name (``la_003_seg`` -> ``_seg``), or None for a scan's."""
    return next((s for s in LABEL_SUFFIXES if case.lower().endswith(s) and len(case) > len(s)), None)


def scans_in(folder: Path, what: str, flat: bool = False) -> dict[str, tuple[Path, str | None]]:
    """Each case of ``folder``: its volume files (NIfTI, NRRD, MetaImage) and DICOM series (a subfolder holding one
    series is the case of that name; series side by side in one folder are named by folder and series number).
    ``flat``: scans and labels share the folder, a label named like its scan with a :data:`LABEL_SUFFIXES` ending
    (``la_003.nii.gz`` + ``la_003_seg.nii.gz``): the images are the files without one, the labels those with one."""
    if not folder.is_dir():
        raise TaskFormatError(f"{what} folder {folder} does not exist")
    found: dict[str, tuple[Path, str | None]] = {}

    def add(case: str, path: Path, series: str | None = None) -> None:
        if flat:
            suffix = label_suffix_of(case)
            if (suffix is None) != (what == "images"):
                return
            case = case[: -len(suffix)] if suffix else case
        case = case[: -len("_0000")] if case.endswith("_0000") else case  # nnU-Net's channel suffix
        if case in found:
            raise TaskFormatError(
                f"{what} folder holds two scans for case {case}: {found[case][0].name} and {path.name}"
            )
        found[case] = (path, series)

    loose_dicom = False
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if volumes.holds_dicom(path):
                listed = volumes.list_series(path)
                if len(listed) == 1:
                    add(path.name, path)
                else:  # several: each its own case, named as every face names it
                    for uid, name in volumes.series_case_ids(path.name, listed).items():
                        add(name, path, uid)
        elif volumes.is_scan_file(path) or (what == "labels" and volumes.format_of(path) == "nrrd"):
            add(volumes.case_id(path), path)
        else:
            loose_dicom = loose_dicom or volumes.format_of(path) == "dicom"
    if loose_dicom:
        series = [s for s in volumes.list_series(folder) if Path(s.files[0]).parent == folder]
        names = volumes.series_case_ids(folder.name, series)
        for one in series:
            add(folder.name if len(series) == 1 else names[one.uid], folder, one.uid)
    return found


def find_cases(
    images: str | os.PathLike,
    labels: str | os.PathLike | None,
    classes: dict[int, str],
    unlabelled: int = DEFAULT_UNLABELLED,
    progress: Progress | None = None,
) -> list[SourceCase]:
    """Match labels to images by file name and check both (labels are read: their values are checked)."""
    flat = labels is not None and Path(labels).resolve() == Path(images).resolve()
    image_files = scans_in(Path(images), "images", flat)
    if not image_files:
        raise TaskFormatError(f"no scans in {images} ({volumes.describe_formats()})")
    labelled = scans_in(Path(labels), "labels", flat) if labels else {}
    label_files = {case: path for case, (path, _) in labelled.items()}
    orphans = sorted(set(label_files) - set(image_files))
    if orphans:
        raise TaskFormatError(f"label {label_files[orphans[0]].name} has no image of the same name in {images}")
    allowed = set(classes) | {unlabelled}
    cases = []
    for i, (case_id, (image_path, series)) in enumerate(sorted(image_files.items())):
        if progress:
            progress(i, len(image_files), case_id)
        geometry = volumes.read_geometry(image_path, series)
        channels = volumes.channels_of(image_path, series)
        if channels > 1:
            raise UnsupportedShapeError(f"{image_path.name} has {channels} channels; give one 3D scan per case")
        label_path = label_files.get(case_id)
        sparse = False
        if label_path is not None:
            label = volumes.read(label_path, label=True)
            check_same_grid(geometry, label.geometry, case_id)
            values = {int(v) for v in np.unique(label.data)}
            unknown = sorted(values - allowed)
            if unknown:
                named = ", ".join(f"{k} {v}" for k, v in classes.items())
                raise LabelValueError(
                    f"{label_path.name} holds label value(s) {unknown}; the classes are {named} "
                    f"(and {unlabelled} for unlabelled voxels)"
                )
            sparse = unlabelled in values
        cases.append(SourceCase(case_id, image_path, label_path, sparse, series))
    if progress:
        progress(len(image_files), len(image_files), "")
    return cases


def _link(source: Path, target: Path) -> None:
    source = source.resolve()  # a symlinked scan: link the file itself (a link to a link would leave the task)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(source, target)


def _place(case: SourceCase, folder: Path, root: Path) -> str:
    """Put ``case``'s image in ``folder`` (a NIfTI file linked, any other format converted to ``.nii.gz`` in its
    own voxel order and geometry); returns its path relative to ``root`` as ``dataset.json`` writes it."""
    if volumes.format_of(case.image) == "nifti":
        target = folder / f"{case.id}{nifti_suffix(case.image)}"
        _link(case.image, target)
    else:
        image = volumes.read(case.image, series=case.series)
        target = volumes.write_image(folder / f"{case.id}.nii.gz", image.data, image.geometry)
    return f"./{target.relative_to(root).as_posix()}"


def _place_label(case: SourceCase, folder: Path, root: Path) -> str:
    """The label beside its image: linked when both are NIfTI, else written as ``.nii.gz`` on the image's grid."""
    like = volumes.read_geometry(case.image, case.series)
    if volumes.format_of(case.image) == "nifti" and volumes.format_of(case.label) == "nifti":
        linkable = like.same_grid(volumes.read_geometry(case.label), tol_mm=1e-3 * max(1.0, max(like.spacing_zyx)))
    else:
        linkable = False
    if linkable:  # the same voxel order and affine: the file itself
        target = folder / f"{case.id}{nifti_suffix(case.label)}"
        _link(case.label, target)
    else:  # another format or voxel order: rewritten on the image's grid, as MSD pairs files by their arrays
        target = volumes.write_labels(folder / f"{case.id}.nii.gz", volumes.read(case.label, label=True).data, like)
    return f"./{target.relative_to(root).as_posix()}"


def _source(case: SourceCase) -> dict[str, str]:
    """What ``dataset.json`` records of a converted scan: where it came from (and which DICOM series)."""
    if volumes.format_of(case.image) == "nifti":
        return {}
    return {"source": str(case.image.absolute())} | ({"series": case.series} if case.series else {})


def nifti_suffix(path: Path) -> str:
    """``.nii.gz`` or ``.nii``, as the file is named."""
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"


def write_task_from_files(
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str,
    modality: str,
    classes: str | dict[int, str],
    labels: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write an MSD-layout task folder ``out`` from ``images`` (and ``labels``); returns ``out``.

    ``out`` must not exist yet (or be an empty folder). Its ``dataset.json`` declares
    ``"unlabelled": 255``; training entries whose label holds 255 say ``"sparse": true``.
    """
    out = Path(out)
    if not name.strip():
        raise TaskFormatError("the task needs a name")
    if modality.upper() not in MODALITIES + (AUTO,):
        raise TaskFormatError(f"modality must be CT, MRI or auto, got {modality!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TaskFormatError(f"{out} already exists and is not an empty folder; choose a new task folder")
    check_writable(out, folder=True, what="task folder")  # before reading every scan
    labels_by_value = parse_classes(classes) if isinstance(classes, str) else dict(classes)
    cases = find_cases(images, labels, labels_by_value, DEFAULT_UNLABELLED, progress)
    if modality.upper() == AUTO:
        modality = guess_modality(cases[0].image, cases[0].series)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = shared_folder(Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)))
    try:
        training, test = [], []
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (partial / sub).mkdir(exist_ok=True)
        for case in cases:
            if case.label is None:
                image = _place(case, partial / "imagesTs", partial)
                test.append({"image": image, **_source(case)} if _source(case) else image)
                continue
            entry = {
                "image": _place(case, partial / "imagesTr", partial),
                "label": _place_label(case, partial / "labelsTr", partial),
            }
            entry.update(_source(case))
            if case.sparse:
                entry["sparse"] = True
            training.append(entry)
        meta = {
            "name": name.strip(),
            "description": f"made by volseg new-task from {Path(images).name}",
            "tensorImageSize": "3D",
            "modality": {"0": modality.upper()},
            "labels": {str(k): v for k, v in labels_by_value.items()},
            UNLABELLED_KEY: DEFAULT_UNLABELLED,
            "numTraining": len(training),
            "numTest": len(test),
            "training": training,
            "test": test,
        }
        write_dataset_json(partial, meta)
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out
