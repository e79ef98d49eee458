"""Pre-flight check that Qt can open a window, turned into one clear line when it cannot.

A Qt platform plugin that cannot load aborts the whole process ("Could not load the Qt platform plugin "xcb" ...
even though it was found", then ``Fatal Python error: Aborted``), so the check runs a tiny Qt application in a
subprocess with ``QT_DEBUG_PLUGINS=1`` and reads its output (and ``ldd`` of the platform plugin) for the missing
library. This module never imports Qt itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from napari_volseg.errors import DisplayError

PROBE = (
    "import os; from qtpy.QtWidgets import QApplication; from qtpy.QtCore import QLibraryInfo;"
    "print('plugins:', QLibraryInfo.location(QLibraryInfo.PluginsPath) if hasattr(QLibraryInfo, 'location') "
    "else QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath), flush=True);"
    "app = QApplication([]); print('qt-ok', app.platformName(), flush=True)"
)
MISSING_LIB = re.compile(r"(lib[\w.+-]+?\.so[.\d]*): cannot open shared object file")
LDD_NOT_FOUND = re.compile(r"^\s*(lib[\w.+-]+?\.so[.\d]*) => not found", re.M)
PLUGIN_FILE = re.compile(r"Cannot load library (\S+\.so)")
NEEDS_PACKAGE = re.compile(r"(xcb-cursor0 or libxcb-cursor0) is needed")


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``,
    ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0`` (a hyphen when the name ends in a digit)."""
    name, _, version = soname.partition(".so")
    major = version.lstrip(".").split(".")[0]
    name = name.lower()
    return f"{name}-{major}" if name[-1].isdigit() and major else f"{name}{major}"


def explain(output: str, ldd_output: str = "", platform: str = "xcb") -> str:
    """One line saying why Qt's ``platform`` plugin did not start, from the probe's and ``ldd``'s output."""
    missing = list(dict.fromkeys(MISSING_LIB.findall(output) + LDD_NOT_FOUND.findall(ldd_output)))
    if missing:
        packages = " ".join(debian_package(m) for m in missing)
        return (
            f'Qt cannot start its "{platform}" platform: missing system librar{"ies" if len(missing) > 1 else "y"} '
            f"{', '.join(missing)} (Debian/Ubuntu: apt-get install {packages}; or run scripts/setup.sh as root)"
        )
    if NEEDS_PACKAGE.search(output):
        return (
            f'Qt cannot start its "{platform}" platform: libxcb-cursor0 is missing '
            "(Debian/Ubuntu: apt-get install libxcb-cursor0; or run scripts/setup.sh as root)"
        )
    if "could not connect to display" in output:
        return (
            "Qt cannot open a window: no display (run under xvfb-run -a, set DISPLAY, "
            "or use `volseg demo --headless --out DIR`)"
        )
    last = [line for line in output.strip().splitlines() if line.strip()]
    return f'Qt cannot start its "{platform}" platform: {last[-1] if last else "it exited without a message"}'


def _ldd(output: str) -> str:
    plugin = PLUGIN_FILE.search(output)
    path = plugin.group(1) if plugin else None
    if path is None:
        root = re.search(r"^plugins: (.+)$", output, re.M)
        if root:
            path = os.path.join(root.group(1).strip(), "platforms", "libqxcb.so")
    if not path or not os.path.exists(path):
        return ""
    try:
        return subprocess.run(["ldd", path], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def probe_qt(timeout: float = 60.0) -> str | None:
    """None when a Qt application starts here (same interpreter, environment and binding), else one line why."""
    env = {**os.environ, "QT_DEBUG_PLUGINS": "1"}
    platform = os.environ.get("QT_QPA_PLATFORM", "xcb" if sys.platform.startswith("linux") else "")
    try:
        result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"Qt did not start within {timeout:.0f} s"
    output = result.stdout + result.stderr
    if result.returncode == 0 and "qt-ok" in output:
        return None
    return explain(output, _ldd(output), platform or "default")


def require_qt() -> None:
    """Raise :class:`DisplayError` (one line) when Qt cannot open a window here."""
    problem = probe_qt()
    if problem:
        raise DisplayError(problem)
