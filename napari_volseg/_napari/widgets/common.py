"""Small helpers the widgets share: case layers, notifications, a dependency-free live plot."""

from __future__ import annotations

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QWidget,
)

from napari_volseg._napari.layers import META_KEY, case_layer_data

ERROR_COLORS = {0: "transparent", 1: "#ff3b30", 2: "#0a84ff", None: "transparent"}
"""Error layer: 1 = false positive (red), 2 = false negative (blue)."""


def notify_error(message: str) -> None:
    show_error(str(message).strip().splitlines()[0] if str(message).strip() else "unknown error")


def case_layers(viewer, case_id: str) -> dict[str, object]:
    """The layers of ``case_id`` by role (image, ground truth, prediction, errors)."""
    found = {}
    for layer in viewer.layers:
        meta = layer.metadata.get(META_KEY, {})
        if meta.get("case") == case_id:
            found[meta.get("role")] = layer
    return found


def show_case(viewer, task, case_id: str, layer_data: list[tuple] | None = None) -> None:
    """Open a case: its image and ground truth, replacing the layers of any other case.

    ``layer_data`` (from :func:`case_layer_data`, loaded in a worker) saves reading the files here."""
    for layer in list(viewer.layers):
        meta = layer.metadata.get(META_KEY, {})
        if meta.get("case") not in (None, case_id):
            viewer.layers.remove(layer)
    have = case_layers(viewer, case_id)
    case = task.case(case_id)
    if "image" not in have:
        for data, kwargs, kind in layer_data or case_layer_data(task, case):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
            if kind == "labels":  # start on the slice with the most foreground
                z = int(np.argmax((data > 0).sum(axis=(1, 2))))
                viewer.dims.set_point(0, viewer.layers[case.id].data_to_world([z, 0, 0])[0])


def set_labels(viewer, name: str, data: np.ndarray, like, role: str, case_id: str, colors=None):
    """Add or update a Labels layer aligned with layer ``like``."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    meta = {META_KEY: {**like.metadata.get(META_KEY, {}), "role": role, "case": case_id}}
    kwargs = {"name": name, "scale": like.scale, "translate": like.translate, "metadata": meta, "opacity": 0.6}
    layer = viewer.add_labels(data, **kwargs)
    if colors is not None:
        from napari.utils.colormaps import DirectLabelColormap

        layer.colormap = DirectLabelColormap(color_dict=colors)
    return layer


class LivePlot(QWidget):
    """Training loss per step (orange) and validation Dice (green, 0..1; or another ``metric``) on one small chart."""

    def __init__(self, parent=None, metric: str = "val Dice"):
        super().__init__(parent)
        self.metric = metric
        self.setMinimumHeight(140)
        self.loss: list[tuple[int, float]] = []
        self.dice: list[tuple[int, float]] = []

    def clear(self) -> None:
        self.loss.clear()
        self.dice.clear()
        self.update()

    def add_loss(self, step: int, value: float) -> None:
        self.loss.append((step, value))
        self.update()

    def add_dice(self, step: int, value: float) -> None:
        self.dice.append((step, value))
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w, h, m = self.width(), self.height(), 24
        p.fillRect(self.rect(), QColor("#262930"))
        p.setPen(QPen(QColor("#5a626c"), 1))
        p.drawRect(m, 6, w - m - 6, h - m - 6)
        steps = [s for s, _ in self.loss + self.dice] or [1]
        x_max = max(max(steps), 1)
        loss_max = max([v for _, v in self.loss] or [1.0]) or 1.0

        def to_point(step, frac):
            return QPointF(m + (w - m - 6) * step / x_max, 6 + (h - m - 6) * (1 - frac))

        for series, scale, color in ((self.loss, loss_max, "#ff9f0a"), (self.dice, 1.0, "#30d158")):
            if len(series) >= 1:
                p.setPen(QPen(QColor(color), 2))
                poly = QPolygonF([to_point(s, min(1.0, v / scale)) for s, v in series])
                p.drawPolyline(poly)
                if len(series) == 1:
                    p.drawEllipse(poly[0], 2, 2)
        p.setPen(QColor("#c0c4cc"))
        last_loss = f"loss {self.loss[-1][1]:.3f}" if self.loss else "loss -"
        last_dice = f"{self.metric} {self.dice[-1][1]:.3f}" if self.dice else f"{self.metric} -"
        p.drawText(m, h - 6, f"{last_loss}   {last_dice}   step {x_max if self.loss else 0}")
        p.end()


def align_right(item):
    item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
    return item


def make_table(columns: tuple[str, ...]) -> QTableWidget:
    """A read-only table selecting whole rows, one at a time."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.setMinimumHeight(110)
    return table


def button_row(*labels: str) -> tuple[QHBoxLayout, list[QPushButton]]:
    """A row of push buttons with these labels."""
    row, buttons = QHBoxLayout(), [QPushButton(text) for text in labels]
    for button in buttons:
        row.addWidget(button)
    return row, buttons
