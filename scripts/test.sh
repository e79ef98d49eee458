#!/usr/bin/env bash
# The tests: set everything up, then run pytest under a virtual X server with Mesa OpenGL so that
# napari's canvas works without a display: the whole suite under PyQt5 (the README's binding), then
# the napari tests again under PyQt6 (napari 0.8 deprecated PyQt5). Extra arguments go to pytest;
# options (arguments starting with -) also go to the PyQt6 pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pytest_() {
  if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
  else
    .venv/bin/python -m pytest "$@"
  fi
}
options=()
for arg in "$@"; do [[ "$arg" == -* ]] && options+=("$arg"); done
QT_API=${QT_API:-pyqt5} PYTEST_QT_API=${QT_API:-pyqt5} pytest_ "$@"
QT_API=pyqt6 PYTEST_QT_API=pyqt6 pytest_ ${options[@]+"${options[@]}"} tests/napari tests/test_manifest.py
