"""The layering rules of CONTRIBUTING.md, checked: import-linter's contracts in pyproject.toml (layers, Qt only in
_napari, no circles), with no exceptions list."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_layer_contracts_hold(monkeypatch):
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_the_contracts_have_no_exceptions_and_cover_every_top_level_module():
    contracts = _contracts()
    assert {c["type"] for c in contracts} == {"layers", "forbidden", "acyclic_siblings"}
    assert not any("ignore_imports" in c for c in contracts)
    [layers] = [c for c in contracts if c["type"] == "layers"]
    named = {name.strip() for layer in layers["layers"] for name in layer.replace("|", ":").split(":")}
    package = ROOT / "napari_volseg"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert modules - {"presets"} == named, "every top-level module sits in one layer"
    [qt] = [c for c in contracts if c["type"] == "forbidden"]
    core = {m.removeprefix("napari_volseg.") for m in qt["source_modules"]}
    assert core == named - {"_napari"}, "only _napari may import Qt or napari"


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "napari_volseg").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_the_package_uses_no_private_napari_api():
    """Issue 26 item 9: napari 0.10 removes private attributes the package leaned on (``Layer._block_refresh``); in
    the napari face no private attribute of another object is used (only the widgets' own, through ``widget`` and
    ``owner``), nor napari's private modules."""
    import re

    private = re.compile(r"\b(?!self\b|cls\b|widget\b|owner\b|napari_volseg\b|torch\b)[A-Za-z_]\w*\._[a-z]\w*")
    found = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in (ROOT / "napari_volseg" / "_napari").rglob("*.py")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line.split("#")[0]) and "``" not in line
    ]
    assert found == []
