"""The live training chart: training loss (left axis) and validation Dice (right axis, 0..1; or another score in
0..1, such as the classifier's test accuracy) per step.

Drawn with pyqtgraph (a maintained Qt plotting library: axes, ticks and legend, and an update costs well under a
millisecond, so a run's 1,000 points never stall napari's event loop); colours follow napari's theme.
"""

from __future__ import annotations

import pyqtgraph as pg
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_volseg._napari.widgets.common import listen

LOSS_COLOR = "#ff9f0a"
DICE_COLOR = "#30d158"


class TrainingPlot(QWidget):
    """Loss per step and a validation score ``metric`` (0..1); ``loss`` and ``dice`` hold the ``(step, value)``
    points shown."""

    def __init__(self, parent=None, metric: str = "validation Dice"):
        super().__init__(parent)
        self.loss: list[tuple[int, float]] = []
        self.dice: list[tuple[int, float]] = []
        self.marks: list[pg.InfiniteLine] = []
        self.view = pg.GraphicsLayoutWidget()
        self.view.setMinimumHeight(170)
        self.plot = plot = self.view.addPlot(row=0, col=0)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setLabel("bottom", "step")
        plot.setLabel("left", "training loss")
        plot.showAxis("right")
        plot.setLabel("right", metric)
        plot.showGrid(x=True, y=True, alpha=0.15)
        for name in ("left", "bottom", "right"):
            plot.getAxis(name).enableAutoSIPrefix(False)  # a loss of 0.55 reads 0.55, not 550 (x0.001)
        self.dice_box = pg.ViewBox(enableMouse=False)
        plot.scene().addItem(self.dice_box)
        plot.getAxis("right").linkToView(self.dice_box)
        self.dice_box.setXLink(plot)
        self.dice_box.setYRange(0.0, 1.0, padding=0.02)
        plot.vb.sigResized.connect(self._align_boxes)
        self.loss_curve = plot.plot([], [], pen=pg.mkPen(LOSS_COLOR, width=1.5), name="training loss")
        self.dice_curve = pg.PlotDataItem(
            [], [], pen=pg.mkPen(DICE_COLOR, width=2), symbol="o", symbolSize=6, symbolBrush=DICE_COLOR
        )
        self.dice_box.addItem(self.dice_curve)
        self.legend = pg.LegendItem(colCount=2, labelTextSize="8pt")  # below the axes: it never hides a curve
        self.view.addItem(self.legend, row=1, col=0)
        self.legend.addItem(self.loss_curve, "training loss")
        self.legend.addItem(self.dice_curve, metric)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.set_title("")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Small: the chart takes the height a tab has left (stretch), and never asks a scroll area for more (a
        word-wrapped status above it makes the tab's height follow the hints of its rows)."""
        return QSize(300, 200)

    def _align_boxes(self) -> None:
        plot = self.plot
        self.dice_box.setGeometry(plot.vb.sceneBoundingRect())
        self.dice_box.linkedViewChanged(plot.vb, self.dice_box.XAxis)

    def set_title(self, text: str) -> None:
        self.plot.setTitle(text or None, size="9pt")

    def apply_theme(self, theme_name: str) -> None:
        """Background, axes and text in the colours of napari's theme ``theme_name`` (``"dark"``, ``"light"``)."""
        from napari.utils.theme import get_theme

        theme = get_theme(theme_name)
        self.view.setBackground(theme.canvas.as_hex())
        text = theme.text.as_hex()
        plot = self.plot
        for name in ("left", "bottom", "right"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(theme.foreground.as_hex()))
            axis.setTextPen(pg.mkPen(text))
        plot.titleLabel.setAttr("color", text)
        self.legend.setLabelTextColor(text)

    def follow_theme(self, viewer) -> None:
        """Take ``viewer``'s theme now and whenever it changes."""
        self.apply_theme(getattr(viewer, "theme", "dark"))
        if hasattr(viewer, "events"):
            listen(self, viewer.events.theme, lambda event: self.apply_theme(event.value))

    def clear(self, title: str = "") -> None:
        self.loss.clear()
        self.dice.clear()
        for line in self.marks:
            self.plot.removeItem(line)
        self.marks.clear()
        self._redraw()
        self.set_title(title)

    def mark(self, step: int, text: str) -> None:
        """A dashed vertical line at ``step`` labelled ``text`` (where a cascade's main net starts)."""
        line = pg.InfiniteLine(
            pos=step,
            angle=90,
            pen=pg.mkPen("#8e8e93", style=Qt.PenStyle.DashLine),
            label=text,
            labelOpts={"position": 0.9},
        )
        self.plot.addItem(line)
        self.marks.append(line)

    def add_loss(self, step: int, value: float) -> None:
        self.loss.append((step, value))
        self.loss_curve.setData(*zip(*self.loss, strict=True))

    def add_dice(self, step: int, value: float) -> None:
        self.dice.append((step, value))
        self.dice_curve.setData(*zip(*self.dice, strict=True))

    def _redraw(self) -> None:
        self.loss_curve.setData([], [])
        self.dice_curve.setData([], [])
