"""All steps in one dock: Data, Preprocess, Train, Predict & evaluate, Annotate and Classify as tabs, each scrollable.

Stacked docks need about 1,500 px of height; as tabs the whole plugin fits a 1366 x 768 laptop screen with
napari's layer list and notifications in view. The tabs share the viewer's session like separate docks would.
"""

from __future__ import annotations

from napari.utils.notifications import show_info
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtWidgets import QFrame, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from napari_volseg._napari.widgets.annotate import AnnotateWidget
from napari_volseg._napari.widgets.classify import ClassifyWidget
from napari_volseg._napari.widgets.common import asked
from napari_volseg._napari.widgets.data import DataWidget
from napari_volseg._napari.widgets.predict import PredictWidget
from napari_volseg._napari.widgets.preprocess import PreprocessWidget
from napari_volseg._napari.widgets.prompts import PromptsWidget
from napari_volseg._napari.widgets.train import TrainWidget

TABS = {
    "Data": DataWidget,
    "Preprocess": PreprocessWidget,
    "Train": TrainWidget,
    "Predict & evaluate": PredictWidget,
    "Annotate": AnnotateWidget,
    "Prompts": PromptsWidget,
    "Classify": ClassifyWidget,
}
"""Tab title -> widget class (taking the viewer), in the order a user works: the segmentation steps, the annotation
loop (correct predictions, accept, fine-tune) and its prompts (click, box, scribble), then the 3D digit classifier. A new step is one more entry here; the
dock, its tests and the screenshots take every entry."""


TAB_LABELS = {"Predict & evaluate": "Predict", "Preprocess": "Prep"}
"""Shorter tab labels where the title would not let all seven tabs fit a 430 px dock (the tab bar scrolled: with
Prompts added, Classify was cut to "Cl"); each tab's tooltip keeps the whole title."""


def scrollable(widget: QWidget, area: QScrollArea | None = None) -> QScrollArea:
    """``widget`` in a frameless scroll area (``area``, else a new one) that scrolls when the screen is short."""
    area = area if area is not None else QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
    area.setWidget(widget)
    return area


class ClosesWithItsPanel:
    """A dock's content that goes when napari closes its panel (the title bar's x): napari only takes the widget out
    of its dock, so it lived on, its predictions, rankings and fine-tunes running unseen while a reopened panel showed
    none of them. With none of its jobs running it is deleted a turn later. With some, it asks first: stopping them
    (a fine-tune writes its model first) closes the panel, with one line; keeping them puts the panel back where
    napari can show it. A training run belongs to the viewer's session and goes on (a reopened Train shows it)."""

    def event(self, event) -> bool:  # noqa: D102 - Qt's
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
                self._dock_title = self.parent().windowTitle() or "napari-volseg"
            elif getattr(self, "_docked", False):
                QTimer.singleShot(0, self._closed)
        return super().event(event)

    def steps(self) -> list[QWidget]:
        return list(getattr(self, "widgets", {}).values()) or [getattr(self, "step_widget", self)]

    def _closed(self) -> None:
        if self.parent() is not None:  # docked again (moved, floated back)
            return
        steps = self.steps()
        session = getattr(steps[0], "session", None) if steps else None
        jobs = session.owned_by(steps) if session is not None else []
        what = self._named(jobs)
        if jobs and not self._stop_asked(what):
            steps[0].viewer.window.add_dock_widget(self, name=self._dock_title, area="right")
            self.show()  # Qt hid it when napari took it out
            return
        training = session is not None and session.training is not None
        if jobs or training:
            stopped = f"stopped: {what}" if jobs else ""
            goes_on = "the training run goes on: Plugins → VolSeg shows it again, with Stop" if training else ""
            show_info("the napari-volseg panel was closed: " + "; ".join(p for p in (stopped, goes_on) if p))
        self.deleteLater()

    @staticmethod
    def _named(jobs) -> str:
        """The running ``jobs`` as their progress bars read now ("predicting 2 / 15: la_004")."""
        named = sorted(
            {str(job.volseg_desc()) for job in jobs if getattr(job, "volseg_desc", None) and job.volseg_desc()}
        )
        return ", ".join(named) if named else "a prediction, ranking or fine-tune"

    def _stop_asked(self, what: str) -> bool:
        """Ask whether closing should stop the jobs named ``what``; True to stop them and close."""
        return asked(
            None,
            "Close the napari-volseg panel?",
            f"Running in this panel: {what}.\nStop it and close the panel? (No keeps both.)",
        )


class StepDock(ClosesWithItsPanel, QScrollArea):
    """One step as a dock of its own (napari's Plugins menu lists each step too), scrollable like a tab of the tabbed
    dock: napari gives a dock the minimum height of its contents, so two steps stacked unscrolled (Train and Predict
    ask 623 + 347 px) pushed the window past a 768 px screen. ``step`` is the step's widget class."""

    step: type[QWidget] = QWidget

    def __init__(self, napari_viewer):
        super().__init__()
        self.step_widget = self.step(napari_viewer)
        scrollable(self.step_widget, self)
        self.setMinimumWidth(360)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(430, min(360, self.step_widget.sizeHint().height()))  # stacked steps share the height


def _step_dock(cls: type[QWidget]) -> type[StepDock]:
    name = cls.__name__.removesuffix("Widget") + "Dock"
    return type(name, (StepDock,), {"step": cls, "__doc__": f"{cls.__name__} as a scrollable dock of its own."})


DataDock = _step_dock(DataWidget)
PreprocessDock = _step_dock(PreprocessWidget)
TrainDock = _step_dock(TrainWidget)
PredictDock = _step_dock(PredictWidget)
AnnotateDock = _step_dock(AnnotateWidget)
PromptsDock = _step_dock(PromptsWidget)
ClassifyDock = _step_dock(ClassifyWidget)


class VolsegDock(ClosesWithItsPanel, QWidget):
    """The plugin's one dock widget; ``widgets[title]`` is each tab's widget."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.widgets = {title: cls(napari_viewer) for title, cls in TABS.items()}
        for title, widget in self.widgets.items():
            label = TAB_LABELS.get(title, title).replace("&", "&&")  # a lone & would underline a shortcut
            self.tabs.addTab(scrollable(widget), label)
            self.tabs.setTabToolTip(self.tabs.count() - 1, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(360)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """About a third of a 1366 px screen: the canvas keeps the rest."""
        return QSize(430, 600)

    def show_tab(self, title: str) -> None:
        self.tabs.setCurrentIndex(list(self.widgets).index(title))
