"""Small helpers the widgets share: a prediction layer beside its scan, read-only tables, sortable number cells."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_volseg._napari.layers import META_KEY, label_colors


def set_labels(viewer, name: str, data: np.ndarray, like, role: str, case_id: str, colors: dict | None = None):
    """Show ``data`` as the ``role`` layer of ``case_id``, aligned with layer ``like``: the layer of that name, else
    another case's layer of that role (reused: no remove and add), else a new one. ``colors`` (label value -> colour)
    replaces the role's colours, e.g. a class palette with a veil for unlabelled voxels."""
    from napari.utils.colormaps import DirectLabelColormap

    from napari_volseg._napari.loading import add_layer, refill

    colormap = DirectLabelColormap(color_dict=colors) if colors is not None else label_colors(role)

    meta = {META_KEY: {**like.metadata.get(META_KEY, {}), "role": role, "case": case_id}}
    kwargs = {"name": name, "scale": like.scale, "translate": like.translate, "metadata": meta}
    layer = viewer.layers[name] if name in viewer.layers else None
    for candidate in viewer.layers:
        info = candidate.metadata.get(META_KEY, {})
        if layer is None and info.get("role") == role and info.get("case") != case_id:
            layer = candidate
    if layer is not None:
        refill(layer, data, kwargs)
        if colors is not None:
            layer.colormap = colormap
        return layer
    return add_layer(viewer, data, {**kwargs, "opacity": 0.6, "colormap": colormap}, "labels")


def button_row(*labels: str) -> tuple[QHBoxLayout, list[QPushButton]]:
    """A row of push buttons with these labels."""
    row, buttons = QHBoxLayout(), [QPushButton(text) for text in labels]
    for button in buttons:
        row.addWidget(button)
    return row, buttons


def make_table(columns: tuple[str, ...] = (), min_height: int = 110) -> QTableWidget:
    """A read-only table with these column headers that selects one whole row at a time; columns fit their
    contents and the last one takes the rest of the width."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(22)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    header.setStretchLastSection(True)
    table.setMinimumHeight(min_height)
    return table


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
