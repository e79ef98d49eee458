#!/usr/bin/env bash
# The system packages napari needs on Debian/Ubuntu: Xvfb + Mesa (OpenGL for napari's canvas without a display)
# and the xcb libraries Qt's "xcb" platform loads. Each package is checked on its own (dpkg-query), so a machine
# that has Xvfb but lacks some of Qt's xcb libraries gets exactly those. Installs as root or with sudo; otherwise
# says what is missing (the test suite then skips the Qt tests with the reason). Called by setup.sh.
set -euo pipefail
SYS_PKGS="xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libfontconfig1 libdbus-1-3"
missing_packages() {
  local pkg
  for pkg in $SYS_PKGS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$pkg"
  done
}
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  MISSING=$(missing_packages)
  if [ -n "$MISSING" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
      echo "setup: installing missing system packages: $MISSING(apt-get)"
      $SUDO apt-get update -qq
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
    else
      echo "setup: warning: missing system packages $MISSING- install them as root (apt-get install ...)," \
        "else the napari tests are skipped with the reason" >&2
    fi
  fi
fi
