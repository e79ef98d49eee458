"""Scans in, labels out: which files a list of inputs names (files, DICOM series folders, folders of scans, an MSD
task folder) and where each one's predicted labels are written. Asked by ``volseg predict``, the cohort runner and
the tests alike."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from napari_volseg.errors import SeriesChoiceError, VolsegError
from napari_volseg.io import volumes

LABEL_FOLDERS = ("labelstr", "labelsts")
"""MSD folders of labels: a file in one is refused as an input to predict."""


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
