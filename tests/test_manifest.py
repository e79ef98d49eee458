"""The npe2 manifest: valid, shipped in the package, found from editable and wheel installs."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_manifest_is_the_packaged_one():
    assert (ROOT / "napari.yaml").read_text() == (ROOT / "napari_volseg" / "napari.yaml").read_text()


def test_manifest_validates_and_is_discovered_from_this_install():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-volseg")
    assert {r.command for r in manifest.contributions.readers} == {"napari-volseg.get_reader"}
    assert [w.layer_types for w in manifest.contributions.writers] == [["labels"]]
    npe2_cli = Path(sys.executable).with_name("npe2")
    result = subprocess.run([str(npe2_cli), "validate", "napari-volseg"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_ships_the_manifest_and_its_entry_point(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("napari_volseg-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "napari_volseg/napari.yaml" in names
        for shipped in (
            "zoo/index.json",
            "zoo/pretrained/msd-heart.safetensors",
            "zoo/pretrained/msd-hippocampus.safetensors",
        ):
            assert f"napari_volseg/{shipped}" in names  # pretrained models work on a fresh install
        [ep] = [n for n in names if n.endswith("entry_points.txt")]
        assert "napari-volseg = napari_volseg:napari.yaml" in zf.read(ep).decode()
    # a clean virtualenv with only the wheel: the entry point resolves to the shipped manifest
    env = tmp_path / "clean"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = (
        "import importlib.metadata as m, importlib.resources as r;"
        "[ep] = [e for e in m.entry_points(group='napari.manifest') if e.name == 'napari-volseg'];"
        "mod, _, res = ep.value.partition(':');"
        "print(r.files(mod).joinpath(res))"
    )
    found = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found).read_text() == (ROOT / "napari.yaml").read_text()
    validate = subprocess.run(
        [str(Path(sys.executable).with_name("npe2")), "validate", found], capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_no_qt_binding_in_the_runtime_dependencies():
    """napari's plugin rules: the binding is the user's choice, offered as extras; setup installs PyQt6, napari's
    recommended binding, and the dev extra PyQt5, the card's, which the tests run under too."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bindings = ("pyqt5", "pyqt6", "pyside2", "pyside6")
    assert not [d for d in project["dependencies"] if d.lower().startswith(bindings)]
    extras = project["optional-dependencies"]
    assert extras["pyqt5"] == ["PyQt5>=5.15"] and extras["pyqt6"] == ["PyQt6>=6.5"]
    assert '".[dev,pyqt6]"' in (ROOT / "scripts" / "setup.sh").read_text()
    assert "PyQt5>=5.15" in extras["dev"]
    assert "QT_API=${QT_API:-pyqt6}" in (ROOT / "scripts" / "demo.sh").read_text()


def test_pytest_qt_uses_the_binding_qtpy_uses():
    import os

    from pytestqt.qt_compat import qt_api
    from qtpy import API_NAME

    assert qt_api.pytest_qt_api == os.environ["QT_API"] and API_NAME.lower() == os.environ["QT_API"]
