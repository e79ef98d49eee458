"""Dock widgets: they translate between the user and the core, nothing more."""

from napari_volseg._napari.widgets.annotate import AnnotateWidget
from napari_volseg._napari.widgets.data import DataWidget
from napari_volseg._napari.widgets.predict import PredictWidget
from napari_volseg._napari.widgets.preprocess import PreprocessWidget
from napari_volseg._napari.widgets.train import TrainWidget

__all__ = ["AnnotateWidget", "DataWidget", "PredictWidget", "PreprocessWidget", "TrainWidget"]
