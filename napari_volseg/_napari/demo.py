"""``volseg demo`` with a window: napari with the plugin's dock and the demo task open."""

from __future__ import annotations

from pathlib import Path


def open_demo(viewer, data: Path | None = None, kind: str = "ct") -> dict:
    """Dock the plugin (one tabbed dock) in ``viewer`` and open the demo task; returns the tabs' widgets by title."""
    from napari_volseg._napari.widgets import VolsegDock
    from napari_volseg.demo import demo_task

    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg", area="right")
    task = demo_task(data, kind)
    dock.widgets["Data"].open_task(task.root)
    return dock.widgets


def run_viewer(data: Path | None = None, kind: str = "ct") -> int:
    import napari

    from napari_volseg._napari.qt_check import require_qt

    require_qt()
    viewer = napari.Viewer(title="napari-volseg demo")
    open_demo(viewer, data, kind)
    napari.run()
    return 0
