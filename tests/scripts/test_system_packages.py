"""scripts/system-packages.sh installs exactly the missing packages (fake dpkg-query and apt-get on PATH)."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-packages.sh"


def _fake_bin(tmp_path: Path, installed: set[str]) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    listed = " ".join(sorted(installed))
    (bin_dir / "dpkg-query").write_text(
        f'#!/bin/bash\npkg="${{@: -1}}"\nfor p in {listed}; do [ "$p" = "$pkg" ] && '
        'printf "install ok installed" && exit 0; done\nexit 1\n'
    )
    (bin_dir / "apt-get").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/apt.log\n')
    (bin_dir / "id").write_text("#!/bin/bash\necho 0\n")  # as root
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def _run(tmp_path: Path, installed: set[str]) -> tuple[subprocess.CompletedProcess, str]:
    env = {**os.environ, "PATH": f"{_fake_bin(tmp_path, installed)}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env)
    log = tmp_path / "apt.log"
    return result, log.read_text() if log.exists() else ""


def _packages() -> list[str]:
    text = SCRIPT.read_text()
    return text.split('SYS_PKGS="', 1)[1].split('"', 1)[0].split()


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="needs bash")
def test_only_the_missing_packages_are_installed_when_xvfb_is_already_there(tmp_path):
    packages = _packages()
    assert {"xvfb", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinerama0"} <= set(packages)
    have = set(packages) - {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinerama0"}
    result, log = _run(tmp_path, have)
    assert result.returncode == 0, result.stderr
    installs = [line.split() for line in log.splitlines() if "install" in line.split()]
    assert len(installs) == 1
    assert {p for p in installs[0] if p.startswith("lib")} == {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinerama0"}


def test_nothing_is_installed_when_everything_is_there(tmp_path):
    result, log = _run(tmp_path, set(_packages()))
    assert result.returncode == 0 and log == "" and result.stdout == ""
