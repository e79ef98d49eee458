"""``volseg demo`` with a window: napari with the plugin's widgets docked and the demo task open."""

from __future__ import annotations

from pathlib import Path


def open_demo(viewer, data: Path | None = None, kind: str = "ct") -> dict:
    """Dock the plugin's widgets in ``viewer`` and open the demo task's first case; returns the widgets."""
    from napari_volseg._napari.widgets import DataWidget, PredictWidget, PreprocessWidget, TrainWidget
    from napari_volseg.demo import demo_task

    widgets = {
        "Data": DataWidget(viewer),
        "Preprocess": PreprocessWidget(viewer),
        "Train": TrainWidget(viewer),
        "Predict & evaluate": PredictWidget(viewer),
    }
    # Data and Preprocess share one place as tabs; the dock added last is the tab in front
    for name in ("Preprocess", "Data", "Train", "Predict & evaluate"):
        viewer.window.add_dock_widget(widgets[name], name=name, area="right", tabify=name == "Data")
    task = demo_task(data, kind)
    widgets["Data"].open_task(task.root)
    return widgets


def run_viewer(data: Path | None = None, kind: str = "ct") -> int:
    import napari

    viewer = napari.Viewer(title="napari-volseg demo")
    open_demo(viewer, data, kind)
    napari.run()
    return 0
