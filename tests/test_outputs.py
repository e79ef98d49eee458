"""Output locations are refused before work starts, and writes are atomic with one-line errors."""

from pathlib import Path

import pytest

from napari_volseg.errors import OutputError
from napari_volseg.outputs import atomic_write, check_writable


def test_new_files_and_folders_in_writable_places_pass_and_nothing_is_created(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "model.safetensors") == tmp_path / "a" / "b" / "model.safetensors"
    assert check_writable(tmp_path / "preds", folder=True) == tmp_path / "preds"
    (tmp_path / "old.csv").write_text("x")
    check_writable(tmp_path / "old.csv")  # replacing an existing file is allowed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]


@pytest.mark.parametrize(
    ("make", "folder", "message"),
    [
        (lambda t: (t / "f").write_text("x") and t / "f", True, "is a file; give a folder"),
        (lambda t: (t / "d").mkdir() or t / "d", False, "is a folder; give a file name"),
        (lambda t: (t / "f").write_text("x") and t / "f" / "sub" / "m.safetensors", False, "is a file, not a folder"),
    ],
    ids=["folder-is-a-file", "file-is-a-folder", "under-a-file"],
)
def test_wrong_kinds_of_path_are_one_line(tmp_path, make, folder, message):
    with pytest.raises(OutputError, match=message) as err:
        check_writable(make(tmp_path), folder=folder)
    assert "\n" not in str(err.value)


def test_a_read_only_folder_is_refused_before_anything_is_written(unwritable_dir):
    for target, folder in ((unwritable_dir / "m.safetensors", False), (unwritable_dir / "new" / "preds", True)):
        with pytest.raises(OutputError, match="no permission to write in .*read-only"):
            check_writable(target, folder=folder)
    with pytest.raises(OutputError, match="cannot write"):  # and the check is right: writing there fails
        atomic_write(unwritable_dir / "x.txt", lambda tmp: None)
    assert list(unwritable_dir.iterdir()) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")

    def full_disk(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"^cannot write .*table.csv: No space left on device$"):
        atomic_write(target, full_disk)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_new_files_is_named_as_such():
    """/proc exists and root may write "in" it, yet it takes no new files: not 'No such file or directory' alone."""
    with pytest.raises(OutputError, match=r"cannot write /proc/dice\.csv: /proc does not take new files"):
        atomic_write("/proc/dice.csv", lambda tmp: None)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_new_files_is_refused_before_the_work(tmp_path):
    """Root may write "in" /proc by its permission bits: the check let a training run start there, and it failed at
    its first save (a newcomer's walk-through). The check now finds out first, and leaves nothing behind."""
    with pytest.raises(OutputError, match=r"^cannot write checkpoint /proc/runs/m\.safetensors: /proc does not take"):
        check_writable("/proc/runs/m.safetensors", what="checkpoint")
    with pytest.raises(OutputError, match=r"/proc does not take new files"):
        check_writable("/proc/preds", folder=True)
    check_writable(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_a_failing_writer_is_not_blamed_on_the_folder(tmp_path):
    """A file missing inside the write (a checkpoint copied from a file that went away) says so plainly."""

    def write(tmp):
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "gone.safetensors"))

    with pytest.raises(OutputError) as caught:
        atomic_write(tmp_path / "out.safetensors", write)
    assert "does not take new files" not in str(caught.value) and "No such file or directory" in str(caught.value)
