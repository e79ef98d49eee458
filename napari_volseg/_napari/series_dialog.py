"""Which DICOM series to open, when a dropped folder holds several (a hospital export often mixes them)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QApplication, QInputDialog


def choose_series(folder: Path, series: list) -> str | None:
    """Ask which of ``series`` (``io.dicom.SeriesInfo``: description, modality, slice count) to open from ``folder``;
    its SeriesInstanceUID, or None when the user cancels."""
    items = [s.describe() for s in series]
    parent = QApplication.activeWindow()
    choice, ok = QInputDialog.getItem(
        parent, "Choose a DICOM series", f"{folder.name} holds {len(series)} series. Open:", items, 0, False
    )
    return series[items.index(choice)].uid if ok and choice in items else None
