#!/usr/bin/env bash
# One-time, idempotent setup on a fresh machine: system libraries for Qt/OpenGL (Debian/Ubuntu, when
# run as root or with sudo), a virtualenv in .venv, the CPU build of torch unless an NVIDIA GPU is
# present, then napari-volseg with PyQt6 and its test extras. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VOLSEG_VENV:-.venv}
TORCH_VERSION=${VOLSEG_TORCH_VERSION:-2.13.0}

bash scripts/system-packages.sh

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PIP="$VENV/bin/python -m pip"

# torch first, so that napari-volseg's "torch>=2.1" is already met and pip does not pull a multi-GB
# CUDA build where no GPU exists. On this project's machines torch==2.13.0 resolves to a CPU build
# kept on local disk. Elsewhere, set VOLSEG_TORCH_INDEX=https://download.pytorch.org/whl/cpu for
# PyTorch's CPU wheels, or .../whl/cu128 for a specific CUDA build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing torch $TORCH_VERSION (CUDA build)"
  else
    echo "setup: no GPU: installing torch $TORCH_VERSION (CPU build)"
  fi
  $PIP install -q "torch==$TORCH_VERSION" ${VOLSEG_TORCH_INDEX:+--index-url "$VOLSEG_TORCH_INDEX"}
fi

if ! "$VENV/bin/python" -c "import napari_volseg, pytest, pytestqt" >/dev/null 2>&1 \
   || [ pyproject.toml -nt "$VENV/.volseg-installed" ]; then
  echo "setup: installing napari-volseg and its dependencies into $VENV"
  # PyQt6, the binding napari recommends (its PyQt5 support is deprecated); the dev extra adds PyQt5, the design
  # card's binding, which the tests still run under
  $PIP install -q -e ".[dev,pyqt6]"
  touch "$VENV/.volseg-installed"
fi
