#!/usr/bin/env bash
# One-time, idempotent setup on a fresh machine: system libraries for Qt/OpenGL (Debian/Ubuntu, when
# run as root or with sudo), a virtualenv in .venv, the CPU build of torch unless an NVIDIA GPU is
# present, then napari-volseg with its test extras. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VOLSEG_VENV:-.venv}
TORCH_VERSION=${VOLSEG_TORCH_VERSION:-2.13.0}

# Xvfb + Mesa (OpenGL for napari's canvas without a display) and the xcb libraries Qt needs.
SYS_PKGS="xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libfontconfig1 libdbus-1-3"
if command -v apt-get >/dev/null 2>&1 && ! command -v xvfb-run >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "setup: installing Xvfb, Mesa and Qt's xcb libraries (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $SYS_PKGS >/dev/null
  else
    echo "setup: warning: cannot install Xvfb/Mesa without root; GUI tests will be skipped" >&2
  fi
fi

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
  $PIP install -q -e ".[dev,pyqt5]"
  touch "$VENV/.volseg-installed"
fi
