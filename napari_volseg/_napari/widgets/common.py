"""Small helpers the widgets share: a prediction layer beside its scan, read-only tables, sortable number cells."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt
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
    another task case's layer of that role when ``like`` is a task case's too (reused: no remove and add; a dropped
    scan's layers are the user's and never refilled), else a new one. ``colors`` (label value -> colour)
    replaces the role's colours, e.g. a class palette with a veil for unlabelled voxels."""
    from napari.utils.colormaps import DirectLabelColormap

    from napari_volseg._napari.loading import add_layer, refill

    colormap = DirectLabelColormap(color_dict=colors) if colors is not None else label_colors(role)

    meta = {META_KEY: {**like.metadata.get(META_KEY, {}), "role": role, "case": case_id}}
    kwargs = {"name": name, "scale": like.scale, "translate": like.translate, "metadata": meta}
    layer = viewer.layers[name] if name in viewer.layers else None
    for candidate in viewer.layers:
        info = candidate.metadata.get(META_KEY, {})
        reusable = info.get("task") and meta[META_KEY].get("task")
        if layer is None and reusable and info.get("role") == role and info.get("case") != case_id:
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
    """A read-only table with these column headers that selects one whole row at a time; its columns are fitted
    (:func:`fit_columns`) whenever it is resized, and by its widget whenever its contents change."""
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
    table.viewport().installEventFilter(_Refit(table))  # the columns refit when the dock is resized
    return table


class _Refit(QObject):
    """Refits a table's columns (:func:`fit_columns`) whenever its viewport is resized."""

    def __init__(self, table: QTableWidget):
        super().__init__(table)
        self.table = table

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Resize:
            fit_columns(self.table)
        return False


def needed_width(table: QTableWidget, column: int) -> int:
    """The width that shows a column's cells and its header's words whole (the header's own size hint also reserves
    the sort arrow and napari's padding, more than a shared column needs)."""
    header = table.horizontalHeader()
    item = table.horizontalHeaderItem(column)
    lines = item.text().split("\n") if item is not None else []
    words = max((header.fontMetrics().horizontalAdvance(line) for line in lines), default=0) + 28  # + sort arrow
    return max(table.sizeHintForColumn(column), words, header.minimumSectionSize())


def fit_columns(table: QTableWidget) -> None:
    """Where every column fits, each gets the width it needs and an equal part of the rest, so the last one stays in
    a 430 px dock (sized to contents, the Predict table's last column was cut to "…" and the Data
    table's split column sat behind a sideways scroll); where they do not (a task of two or more classes: seven
    Predict columns), each keeps the width it needs and the table scrolls sideways, the first columns in view
    (shared, the hippocampus's Dice cells read "0....")."""
    header = table.horizontalHeader()
    count = table.columnCount()
    needed = [needed_width(table, c) for c in range(count)]
    room = table.viewport().width() - sum(needed)
    share = room >= 0
    header.setStretchLastSection(share)
    for column in range(count):
        if share:  # each column what it needs and an equal part of the room left (the last one takes the rest)
            header.setSectionResizeMode(column, QHeaderView.Interactive)
            header.resizeSection(column, needed[column] + room // count)
        else:
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)


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


def listen(widget, signal, slot) -> None:
    """Connect ``signal`` (the session's psygnal signals, napari's events) to ``slot`` while ``widget`` lives: a
    closed panel's widgets stop listening (their slots raised "wrapped C/C++ object ... has been deleted" at the
    next checkpoint)."""
    signal.connect(slot)

    def forget(*_) -> None:
        try:
            signal.disconnect(slot)
        except (RuntimeError, ValueError, TypeError):  # already gone with its owner
            pass

    widget.destroyed.connect(forget)


def asked(parent, title: str, text: str) -> bool:
    """A Yes / No question (No by default); True for Yes."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes


def usable_or_asked(parent, checkpoint) -> bool:
    """True where ``checkpoint`` is usable (or was never validated); for a model validated as not usable yet (Dice
    below 0.5, or predicting volumes far off the truth's) ask first, saying why."""
    from napari_volseg.engine.quality import of_file

    quality = of_file(checkpoint)
    if quality.usable is not False:
        return True
    return asked(parent, "Model not usable yet", f"This model is {quality.line}.\nPredict with it anyway?")
