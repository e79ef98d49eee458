"""The exceptions the core raises: each carries one line a user can act on.

Faces (CLI, widgets) catch :class:`VolsegError` and show ``str(error)``; anything
else is a bug and keeps its traceback.
"""


class VolsegError(Exception):
    """Base of every error meant for the user: ``str(err)`` is one actionable line."""


class NiftiReadError(VolsegError):
    """A file is not a readable NIfTI image (wrong format, truncated, corrupt)."""


class UnsupportedShapeError(VolsegError):
    """An image has a number of dimensions the tool cannot segment (not 3D or 4D)."""


class GeometryMismatchError(VolsegError):
    """Two volumes that must share a voxel grid (image and label) do not."""


class LabelValueError(VolsegError):
    """A label volume holds values that the task does not name, or non-integers."""


class TaskFormatError(VolsegError):
    """An MSD task folder or its ``dataset.json`` is missing, malformed or unsafe."""


class DownloadError(VolsegError):
    """A download failed: unreachable host, bad checksum, or an unsafe archive."""


class DisplayError(VolsegError):
    """Qt cannot start a window: no display, or a system library its platform plugin needs is missing."""


class SettingsError(VolsegError):
    """A plan, training or inference setting has the wrong type or lies outside its allowed range."""


class OutputError(VolsegError):
    """An output location cannot be written (not a folder, no permission, disk full)."""


class VolumeFormatError(VolsegError):
    """A volume file (NRRD, MetaImage, DICOM) cannot be read or written as asked."""


class DicomError(VolumeFormatError):
    """A DICOM series is not one clean volume (missing slices, tilt, mixed sizes) or cannot be decoded."""


class SeriesChoiceError(DicomError):
    """A folder holds several DICOM series and none was chosen; ``series`` lists them for a face to offer."""

    def __init__(self, message: str, series: list) -> None:
        super().__init__(message)
        self.series = series
