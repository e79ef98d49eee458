"""Small helpers the widgets share: notifications, a prediction layer beside its scan, sortable number cells."""

from __future__ import annotations

import math

import numpy as np
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractSpinBox, QComboBox, QSizePolicy, QTableWidgetItem, QWidget

from napari_volseg._napari.layers import META_KEY, label_colors


def _one_line(message) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else "unknown error"


def notify_error(message) -> None:
    show_error(_one_line(message))


def notify_warning(message) -> None:
    show_warning(_one_line(message))


def set_labels(viewer, name: str, data: np.ndarray, like, role: str, case_id: str):
    """Add or update a Labels layer aligned with layer ``like``, coloured for its role."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    meta = {META_KEY: {**like.metadata.get(META_KEY, {}), "role": role, "case": case_id}}
    kwargs = {"name": name, "scale": like.scale, "translate": like.translate, "metadata": meta, "opacity": 0.6}
    return viewer.add_labels(data, colormap=label_colors(role), **kwargs)


def compact(widget: QWidget) -> QWidget:
    """Let a combo or spin box shrink to a narrow dock: its width no longer follows its longest item or range."""
    if isinstance(widget, QComboBox):
        widget.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        widget.setMinimumContentsLength(6)
    elif isinstance(widget, QAbstractSpinBox):  # napari's style sheet asks 90 px of every spin box
        widget.setStyleSheet("QAbstractSpinBox { min-width: 44px; }")
        widget.setSizePolicy(QSizePolicy.Ignored, widget.sizePolicy().verticalPolicy())
    return widget


class NumberItem(QTableWidgetItem):
    """A right-aligned table cell that sorts by number (NaN first), shown as ``—`` when NaN."""

    def __init__(self, value: float, digits: int = 4):
        super().__init__("—" if math.isnan(value) else f"{value:.{digits}f}")
        self.value = value
        self.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))

    def __lt__(self, other):
        if isinstance(other, NumberItem):
            a = -math.inf if math.isnan(self.value) else self.value
            b = -math.inf if math.isnan(other.value) else other.value
            return a < b
        return super().__lt__(other)
