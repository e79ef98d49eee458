"""Shared fixtures: the real MSD cases beside the checkout (skipped when absent) and small synthetic tasks."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from napari_volseg.io import synthetic

os.environ.setdefault("QT_API", "pyqt5")
# napari's settings (the reader preference the plugin claims among them) go to a scratch file, never the user's
os.environ.setdefault("NAPARI_CONFIG", os.path.join(tempfile.mkdtemp(prefix="volseg-napari-"), "settings.yaml"))
# pytest-qt must load the binding qtpy and napari use: left to guess, it imports PyQt6 first, and qtpy
# then falls back to it ("Selected binding 'pyqt5' could not be found; falling back to 'pyqt6'")
os.environ.setdefault("PYTEST_QT_API", os.environ["QT_API"])
SHARED = Path(os.environ.get("VOLSEG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TINY_CT = synthetic.PhantomSpec(shape=(16, 48, 48), spacing=(5.0, 2.0, 2.0))
TRAIN_CT = synthetic.PhantomSpec(shape=(24, 64, 64), spacing=(5.0, 1.6, 1.6))


QT_FIXTURES = {"qtbot", "make_napari_viewer"}


def pytest_collection_modifyitems(config, items):
    """Pre-flight: when Qt cannot start (no display, or a missing xcb library), the Qt tests are skipped with one
    line naming the cause, instead of the first of them aborting the whole run."""
    needs_qt = [item for item in items if QT_FIXTURES & set(getattr(item, "fixturenames", ()))]
    for item in needs_qt:  # a viewer or a widget: not for the fast selection (`pytest -m "not slow"`)
        item.add_marker(pytest.mark.slow)
    if not needs_qt or not os.environ.get("DISPLAY"):
        return
    from napari_volseg._napari.qt_check import probe_qt

    problem = probe_qt()
    if problem:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"volseg: {problem}; skipping the Qt tests")
        for item in needs_qt:
            item.add_marker(pytest.mark.skip(reason=problem))


def shared_task(name: str) -> Path:
    folder = SHARED / name
    if not (folder / "dataset.json").is_file():
        pytest.skip(f"real MSD data not available ({folder})")
    return folder


@pytest.fixture(scope="session")
def heart_dir() -> Path:
    return shared_task("Task02_Heart")


@pytest.fixture(scope="session")
def hippocampus_dir() -> Path:
    return shared_task("Task04_Hippocampus")


@pytest.fixture(scope="session")
def tiny_ct_task(tmp_path_factory) -> Path:
    """Six small synthetic CT cases (16 x 48 x 48 voxels), written once per test session."""
    return synthetic.write_task(tmp_path_factory.mktemp("tiny") / "Task90_TinyCT", cases=6, kind="ct", spec=TINY_CT)


@pytest.fixture(scope="session")
def train_ct_task(tmp_path_factory) -> Path:
    """Six synthetic CT cases (24 x 64 x 64 voxels at 5 x 1.6 x 1.6 mm) that a U-Net learns in seconds."""
    return synthetic.write_task(tmp_path_factory.mktemp("train") / "Task91_TrainCT", cases=6, kind="ct", spec=TRAIN_CT)


def quick_preset(**train):
    """fast-cpu shrunk for tests: whole-volume patches, validation every 2 epochs of 10 steps."""
    from napari_volseg.config import load_preset

    settings = {
        "patch_size": (16, 64, 64),
        "iterations_per_epoch": 10,
        "val_every": 2,
        "val_cases": 2,
        "minutes": None,
        "epochs": 2,
        "threads": 2,
    }
    settings.update(train)
    preset = load_preset("fast-cpu").with_overrides(**settings)
    # batches of two unless a test asks for more: fast-cpu's voxel-sized batches would quadruple test time
    batch_voxels = train.get("batch_voxels")
    return dataclasses.replace(preset, train=dataclasses.replace(preset.train, batch_voxels=batch_voxels))


@pytest.fixture
def annotate_task(tmp_path) -> Path:
    """A fresh tiny synthetic CT task per test: 4 labelled cases and 2 unlabelled ones in imagesTs/."""
    return synthetic.write_task(tmp_path / "Task92_Annotate", cases=4, kind="ct", spec=TINY_CT, test_cases=2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A model trained for 8 steps on a tiny task (4 labelled cases, 1 validating): weights to start from."""
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.io.decathlon import load_task

    root = tmp_path_factory.mktemp("ckpt")
    task = load_task(synthetic.write_task(root / "Task92_Annotate", cases=4, kind="ct", spec=TINY_CT))
    preset = quick_preset(epochs=2, iterations_per_epoch=4, val_cases=1, val_every=2)
    events = list(Trainer(task, preset, root / "v001.safetensors", cache_root=root / "cache").run())
    assert type(events[-1]).__name__ == "Finished", events[-1]
    return root / "v001.safetensors"


def cascade_preset(**train):
    """quick_preset forced to a cascade on the small synthetic tasks (tiny voxel budgets)."""
    preset = quick_preset(**train)
    plan = dataclasses.replace(preset.plan, cascade=True, max_voxels=20_000, locator_voxels=4_000, roi_margin_mm=10.0)
    return dataclasses.replace(preset, plan=plan)


@pytest.fixture
def tiny_preset(monkeypatch):
    """A classifier preset that trains in seconds: a 4-8-8-8 VGG3D on the first 20 train and test digits."""
    from napari_volseg.classify.config import ClassifyPreset
    from napari_volseg.models import registry
    from napari_volseg.models.vgg3d import VGG3DConfig

    monkeypatch.setitem(registry.CLASSIFIER_PRESETS, "tiny-3d", (VGG3DConfig(widths=(4, 8, 8, 8), hidden=16), "tests"))
    return ClassifyPreset(
        name="tiny", model="tiny-3d", epochs=2, lr=1e-2, batch_size=8, train_copies=1, test_copies=1, limit=20
    )


@pytest.fixture(scope="session")
def trained_ct_checkpoint(train_ct_task, tmp_path_factory) -> Path:
    """fast-cpu (whole volumes: the phantom fits its voxel budget) trained for 40 steps on the synthetic CT."""
    from napari_volseg import events as ev
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.io.decathlon import load_task

    out = tmp_path_factory.mktemp("trained") / "ct.safetensors"
    preset = quick_preset(epochs=4, val_every=4)
    for event in Trainer(load_task(train_ct_task), preset, out, cache_root=out.parent / "cache").run():
        assert not isinstance(event, ev.Failed), event
    return out


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_DAC_CAPS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: root's licence to ignore file modes


@contextlib.contextmanager
def _file_modes_apply_to_root():
    """For root, drop the capabilities that bypass file modes from this thread's effective set (restored
    on exit), so a read-only folder is read-only here too; a no-op for other users."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("cannot read this thread's capabilities")
    saved = data[0].effective
    data[0].effective &= ~_DAC_CAPS
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("cannot drop the capabilities that let root write read-only folders")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder this test may not write in (mode 0555; for root, with the mode-bypassing capabilities
    dropped from the test's thread). Subprocesses need :func:`as_unprivileged` on their command."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    with _file_modes_apply_to_root():
        yield folder
    folder.chmod(0o755)


def as_unprivileged(command: list[str]) -> list[str]:
    """``command`` run so that file modes bind it, root or not (root: without CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a folder unwritable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]


def write_nifti(path, data, *, sform=None, sform_code=1, qform=None, qform_code=1, pixdim=None, dtype=None):
    """Write ``data`` (file voxel order) with exactly the header fields given, however broken
    (nibabel would otherwise rewrite the sform from the image's affine)."""
    import nibabel as nib
    import numpy as np

    header = nib.Nifti1Header()
    header.set_data_dtype(dtype or data.dtype)
    header.set_data_shape(data.shape)
    if pixdim is not None:
        header["pixdim"][1 : 1 + len(pixdim)] = pixdim
    header["qform_code"], header["sform_code"] = qform_code if qform is not None else 0, sform_code
    if qform is not None:
        header.set_qform(np.asarray(qform, float), code=qform_code)
    header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform if sform is not None else np.eye(4))[:3]
    nib.save(nib.Nifti1Image(data, None, header=header), str(path))
    return path


@contextlib.contextmanager
def no_hang(seconds: int = 20):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds`` (main thread, POSIX)."""
    import signal

    def timeout(signum, frame):
        raise TimeoutError(f"took more than {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line_volseg_error(call):
    """Run ``call()``: its result, or None after a VolsegError whose message is one non-empty line.
    Any other exception propagates (the fuzz tests' property: a clear line or success, never a traceback)."""
    from hypothesis import event

    from napari_volseg.errors import VolsegError

    with no_hang():
        try:
            result = call()
        except VolsegError as exc:
            message = str(exc)
            assert message.strip() and "\n" not in message, repr(message)
            event(f"refused: {type(exc).__name__}")
            return None
    event("accepted")
    return result


@pytest.fixture(autouse=True)
def no_modal_questions(request, monkeypatch):
    """A question box (Predict asks before using a model not usable yet) answers Yes in tests and is recorded in
    ``request.node.questions``: a real modal box would wait for a click forever. A test that answers otherwise
    patches ``QMessageBox.question`` itself."""
    request.node.questions = []
    if not QT_FIXTURES & set(request.fixturenames):
        return
    from qtpy.QtWidgets import QMessageBox

    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda parent, title, text, *a: (request.node.questions.append(text), QMessageBox.Yes)[1],
    )


def scripted_trainer(script):
    """A stand-in for ``Trainer`` in widget tests whose run yields ``script(trainer)``'s events (a generator that may
    watch ``trainer.stopping``)."""

    class Scripted:
        stopping = False

        def __init__(self, *args, **kwargs):
            pass

        def run(self):
            yield from script(self)

        def stop(self):
            self.stopping = True

    return Scripted


def recording_trainer(captured: dict | None = None):
    """A stand-in for ``Trainer`` in widget tests that check what Start hands the engine, not training: it records
    the preset's plan and the keyword arguments in ``captured`` and ends at once."""
    captured = {} if captured is None else captured

    class Recorder:
        stopping = False

        def __init__(self, task, preset, out, **kwargs):
            captured.update(kwargs, plan=preset.plan)

        def run(self):
            yield from ()

        def stop(self):
            pass

    return Recorder


@pytest.fixture
def notifications(monkeypatch):
    """Every napari notification shown during the test, as ``(severity, message)``."""
    from napari.utils.notifications import notification_manager

    shown = []
    monkeypatch.setattr(notification_manager, "records", [])
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)
