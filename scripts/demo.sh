#!/usr/bin/env bash
# The main job: set everything up, then run `volseg demo` (napari with the plugin on the synthetic
# task). Extra arguments go to `volseg demo`, e.g. `--headless --out DIR` for no window.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_API=${QT_API:-pyqt6}  # napari's recommended binding (PyQt5 is also installed, for the tests)
if [[ " $* " != *" --headless "* ]] && [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  echo "demo: no display: running napari under xvfb-run (use --headless for files only)" >&2
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/volseg demo "$@"
fi
exec .venv/bin/volseg demo "$@"
