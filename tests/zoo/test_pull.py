"""volseg pull: a model named in an index, fetched from 127.0.0.1, SHA-256 checked, resumed after a break."""

from __future__ import annotations

import hashlib
import json

import pytest
from fakes import write_checkpoint
from served import serve

from napari_volseg.cli import main
from napari_volseg.errors import DownloadError, VolsegError
from napari_volseg.zoo import registry
from napari_volseg.zoo.backend import open_model
from napari_volseg.zoo.pull import pull


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A served model file, an index naming it, and an empty user cache."""
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    with serve(tmp_path / "served") as server:
        model = write_checkpoint(tmp_path / "served" / "organ-v1.safetensors")
        server.blob = model.read_bytes()
        entry = {
            "name": "organ",
            "url": f"{server.url}/organ-v1.safetensors",
            "sha256": hashlib.sha256(server.blob).hexdigest(),
            "description": "a test organ model",
        }
        server.index = tmp_path / "index.json"
        server.index.write_text(json.dumps({"models": [entry]}))
        yield server


def installed(tmp_path):
    return tmp_path / "cache" / "models" / "organ.safetensors"


def test_pull_verifies_installs_and_the_name_then_works_everywhere(zoo, tmp_path, capsys):
    with pytest.raises(registry.UnknownModelError, match="not installed: run `volseg pull organ`"):
        registry.resolve("organ", zoo.index)
    events = list(pull("organ", zoo.index))
    path = events[-1].path
    assert path == installed(tmp_path) and path.read_bytes() == zoo.blob
    assert (events[-2].done, events[-2].total) == (len(zoo.blob), len(zoo.blob))
    assert open_model("organ").labels == {0: "background", 1: "organ"}
    n = len(zoo.requests)
    assert main(["pull", "organ", "--index", str(zoo.index)]) == 0  # already there, checksum fine: no transfer
    assert len(zoo.requests) == n
    assert main(["models", "--index", str(zoo.index)]) == 0
    assert "organ (installed)" in capsys.readouterr().out


def test_an_index_served_over_http_lists_what_can_be_pulled(zoo, capsys):
    (zoo.folder / "index.json").write_text(zoo.index.read_text())
    assert main(["models", "--index", f"{zoo.url}/index.json"]) == 0
    out = capsys.readouterr().out
    assert "organ (not installed)" in out and "volseg pull organ" in out
    assert "cpu-lean" in out and "1,413,250 parameters" in out  # architectures are still listed


def test_a_file_failing_its_checksum_is_quarantined_and_never_loaded(zoo, tmp_path, capsys):
    (zoo.folder / "organ-v1.safetensors").write_bytes(zoo.blob[:-10] + b"0123456789")  # tampered
    assert main(["pull", "organ", "--index", str(zoo.index)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("volseg: error: organ.safetensors failed its checksum") and "\n" not in err
    assert not installed(tmp_path).exists()
    assert installed(tmp_path).with_name("organ.safetensors.corrupt").is_file()
    with pytest.raises(VolsegError, match="not installed"):
        registry.resolve("organ", zoo.index)


def test_an_interrupted_transfer_resumes_with_a_range_request(zoo, tmp_path):
    zoo.cut_after = 1000
    with pytest.raises(DownloadError, match="broke off at 1000 .*run again to resume"):
        list(pull("organ", zoo.index, timeout=5))
    part = installed(tmp_path).with_name("organ.safetensors.part")
    assert part.stat().st_size == 1000 and not installed(tmp_path).exists()
    path = list(pull("organ", zoo.index))[-1].path
    assert zoo.requests[-1][1] == "bytes=1000-"
    assert path.read_bytes() == zoo.blob and not part.exists()


def test_unknown_names_and_bad_indexes_are_one_line(zoo, tmp_path):
    with pytest.raises(registry.UnknownModelError, match="has no 'liver' .*lists: organ"):
        list(pull("liver", zoo.index))
    zoo.index.write_text(json.dumps({"models": [{"name": "../evil", "url": "x", "sha256": "0" * 64}]}))
    with pytest.raises(VolsegError, match="not valid"):
        registry.load_index(zoo.index)
    with pytest.raises(registry.UnknownModelError, match="neither a file nor a known model"):
        registry.resolve("no-such-model")
