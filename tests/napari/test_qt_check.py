"""The Qt pre-flight check's one line, from simulated probe output (no library is removed from the machine)."""

import os

import pytest

from napari_volseg._napari import qt_check
from napari_volseg.errors import DisplayError

XCB_FAILURE = """\
QFactoryLoader::QFactoryLoader() checking directory path "/venv/PyQt5/Qt5/plugins/platforms" ...
Got keys from plugin meta data ("xcb")
Cannot load library /venv/PyQt5/Qt5/plugins/platforms/libqxcb.so: (libxcb-icccm.so.4: cannot open shared object \
file: No such file or directory)
qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.
This application failed to start because no Qt platform plugin could be initialized.
"""
LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-xinerama.so.0 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
"""


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libdbus-1.so.3", "libdbus-1-3"),
        ("libGL.so.1", "libgl1"),
    ],
)
def test_debian_package_of_a_library(soname, package):
    assert qt_check.debian_package(soname) == package


def test_missing_xcb_libraries_become_one_line_naming_them_and_their_packages():
    line = qt_check.explain(XCB_FAILURE, LDD)
    assert "\n" not in line
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1, libxcb-xinerama.so.0" in line
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0" in line


def test_newer_qt_asking_for_xcb_cursor_and_a_missing_display():
    assert "libxcb-cursor0" in qt_check.explain("xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb plugin")
    line = qt_check.explain('qt.qpa.xcb: could not connect to display\nCould not load the Qt platform plugin "xcb"')
    assert line.startswith("Qt cannot open a window: no display") and "xvfb-run" in line


def test_require_qt_raises_one_line_and_probe_passes_where_qt_works(monkeypatch):
    monkeypatch.setattr(qt_check, "probe_qt", lambda: qt_check.explain(XCB_FAILURE))
    with pytest.raises(DisplayError, match="libxcb-icccm.so.4"):
        qt_check.require_qt()
    monkeypatch.undo()
    if os.environ.get("DISPLAY"):
        assert qt_check.probe_qt() is None


def test_volseg_demo_says_one_line_when_qt_cannot_start(monkeypatch, capsys):
    from napari_volseg import cli

    monkeypatch.setattr(qt_check, "probe_qt", lambda: qt_check.explain(XCB_FAILURE, LDD))
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("volseg: error: Qt cannot start") and "\n" not in err
