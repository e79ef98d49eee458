"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from conftest import TINY_CT
from served import serve

from napari_volseg.errors import DownloadError
from napari_volseg.events import Downloaded, Downloading
from napari_volseg.io import download, synthetic

TASK = "Task77_Tiny"


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "served") as httpd:
        yield httpd


def _url(httpd):
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def _good_tar(folder: Path, src_parent: Path) -> str:
    synthetic.write_task(src_parent / TASK, cases=2, kind="ct", spec=TINY_CT)
    tar_path = folder / f"{TASK}.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(src_parent / TASK, arcname=TASK)
        (src_parent / "._junk").write_bytes(b"mac resource fork")
        tar.add(src_parent / "._junk", arcname=f"{TASK}/imagesTr/._spleen_001.nii.gz")
    return hashlib.md5(tar_path.read_bytes()).hexdigest()


def test_good_tarball_downloads_verifies_extracts_and_is_not_fetched_again(server, tmp_path):
    md5 = _good_tar(Path(server.folder), tmp_path / "src")
    *seen, done = download.download_task(TASK, tmp_path / "data", base_url=_url(server), md5=md5)
    folder = done.path
    assert done == Downloaded(TASK, tmp_path / "data" / TASK) and download.is_complete(folder)
    assert not (folder / "imagesTr" / "._spleen_001.nii.gz").exists()
    assert seen and all(isinstance(e, Downloading) for e in seen) and seen[-1].done == seen[-1].total
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [TASK]
    n = len(server.requests)
    assert list(download.download_task(TASK, tmp_path / "data", base_url=_url(server), md5=md5)) == [done]
    assert len(server.requests) == n


def test_corrupted_download_fails_checksum_and_is_deleted(server, tmp_path):
    _good_tar(Path(server.folder), tmp_path / "src")
    with pytest.raises(DownloadError, match="failed its checksum"):
        _download(TASK, tmp_path / "data", base_url=_url(server), md5="0" * 32)
    assert list((tmp_path / "data").iterdir()) == []


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    md5 = _good_tar(Path(server.folder), tmp_path / "src")
    blob = (Path(server.folder) / f"{TASK}.tar").read_bytes()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"{TASK}.tar.part").write_bytes(blob[:1000])
    _download(TASK, tmp_path / "data", base_url=_url(server), md5=md5)
    assert server.requests[-1][1] == "bytes=1000-"
    assert download.is_complete(tmp_path / "data" / TASK)


def test_server_without_ranges_restarts_from_zero(server, tmp_path):
    md5 = _good_tar(Path(server.folder), tmp_path / "src")
    server.ranges = False
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"{TASK}.tar.part").write_bytes(b"stale bytes from elsewhere")
    _download(TASK, tmp_path / "data", base_url=_url(server), md5=md5)
    assert download.is_complete(tmp_path / "data" / TASK)


def _download(*args, **kwargs) -> Path:
    """Run a download to its end: the folder."""
    return list(download.download_task(*args, **kwargs))[-1].path


def _evil_tar(folder: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> str:
    tar_path = folder / f"{TASK}.tar"
    with tarfile.open(tar_path, "w") as tar:
        ok = tarfile.TarInfo(f"{TASK}/dataset.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return hashlib.md5(tar_path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_archives_are_refused_and_leave_nothing(server, tmp_path, kind):
    if kind == "dotdot":
        member = tarfile.TarInfo(f"{TASK}/../../escaped.txt")
        member.size = 1
    elif kind == "absolute":
        member = tarfile.TarInfo("/tmp/volseg-escaped.txt")
        member.size = 1
    else:
        member = tarfile.TarInfo(f"{TASK}/link")
        member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        member.linkname = "/etc/passwd"
    md5 = _evil_tar(Path(server.folder), member)
    with pytest.raises(DownloadError, match="outside the target folder|is a link"):
        _download(TASK, tmp_path / "data", base_url=_url(server), md5=md5)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/volseg-escaped.txt").exists()
    assert list((tmp_path / "data").iterdir()) == []  # nothing extracted, the refused tarball deleted


def test_offline_gives_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="offline") as err:
        _download("Task02_Heart", tmp_path, base_url=f"http://127.0.0.1:{port}")
    assert "\n" not in str(err.value)


def test_missing_file_on_server_is_an_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        _download("Task09_Spleen", tmp_path, base_url=_url(server))


def test_known_msd_tasks_have_checksums():
    assert download.MSD_MD5["Task09_Spleen"] == "410d4a301da4e5b2f6f86ec3ddba524e"
    assert download.task_url("Task02_Heart").endswith("/Task02_Heart.tar")
    with pytest.raises(DownloadError, match="no checksum"):
        _download("Task99_Unknown", "/nonexistent-volseg")
