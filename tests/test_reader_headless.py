"""Issue 26 item 10: napari used headless (scripts, notebooks) with no Qt binding installed opens our files through
the reader; before, `_napari/reader.py` imported the loader, which needs a binding (QtBindingsNotFoundError)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_QT = """
import importlib.abc, sys
class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6"):
            raise ImportError(f"no Qt binding here: {name}")
        return None
sys.meta_path.insert(0, NoQt())
"""


@pytest.mark.slow
def test_the_reader_works_in_napari_without_a_qt_binding(tiny_ct_task):
    scan = sorted((tiny_ct_task / "imagesTr").glob("*.nii.gz"))[1]
    script = (
        BLOCK_QT
        + f"""
from napari.components import ViewerModel
from npe2 import PluginManager
PluginManager.instance().discover()  # what napari does at start; a headless script asks npe2 itself
viewer = ViewerModel()
viewer.open({str(scan)!r}, plugin="napari-volseg")
viewer.open({str(tiny_ct_task)!r}, plugin="napari-volseg")
print(sorted(layer.name for layer in viewer.layers))
try:
    import qtpy.QtWidgets
    print("a binding was found")
except ImportError:
    print("no binding")
"""
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "no binding"
    case = scan.name.removesuffix(".nii.gz")
    assert lines[-2] == str(sorted([case, "spleen_001", "spleen_001 ground truth"]))
