"""napari-volseg: 3D U-Net segmentation of medical volumes in napari and on the command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-volseg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from napari_volseg.errors import VolsegError

__all__ = ["VolsegError", "__version__"]
