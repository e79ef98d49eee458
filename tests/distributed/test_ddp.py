"""Two gloo ranks on the CPU over loopback: in sync, rank 0 alone writes, the checkpoint predicts."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
pytestmark = pytest.mark.skipif(shutil.which(TORCHRUN) is None, reason="torchrun not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args, tmp_path):
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "VOLSEG_CACHE": str(tmp_path / "cache")}
    cmd = [TORCHRUN, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.slow
def test_two_ranks_stay_in_sync_and_only_rank_0_writes(train_ct_task, tmp_path):
    out = tmp_path / "run" / "ddp.safetensors"
    result = _torchrun([str(HERE / "ddp_worker.py"), str(train_ct_task), str(out), str(tmp_path / "digests")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    r0 = (tmp_path / "digests" / "rank0.txt").read_text()
    r1 = (tmp_path / "digests" / "rank1.txt").read_text()
    assert r0.split()[0] == "6" and r0 == r1  # same step count, identical weights
    assert sorted(p.name for p in out.parent.iterdir()) == ["rank0-ddp.last.safetensors", "rank0-ddp.safetensors"]


@pytest.mark.slow
@pytest.mark.parametrize("cascade", [False, True], ids=["single", "cascade"])
def test_volseg_train_under_torchrun_gives_an_ordinary_checkpoint(train_ct_task, tmp_path, cascade):
    from napari_volseg.engine import checkpoint as ckpt
    from napari_volseg.engine import naming
    from napari_volseg.engine.infer import Predictor
    from napari_volseg.io import decathlon

    out = tmp_path / "m.safetensors"
    preset = tmp_path / "tiny.yaml"
    # the cascade: a locator epoch (4 steps), then 4 epochs of the main net, both stages under DDP
    plan = "plan: {cascade: true, max_voxels: 30000, locator_voxels: 8000, roi_margin_mm: 10}\n" if cascade else ""
    preset.write_text(
        f"name: tiny\nmodel: cpu-lean\n{plan}train: {{epochs: {5 if cascade else 1}, iterations_per_epoch: 4, "
        "val_every: 1, patch_size: [16, 32, 32], threads: 1}\n"
    )
    result = _torchrun(
        [
            "-m",
            "napari_volseg.cli",
            "train",
            "--data",
            str(train_ct_task),
            "--preset",
            str(preset),
            "--out",
            str(out),
            "--val-cases",
            "2",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("finished at step") == 1  # rank 0 alone reports
    loaded = ckpt.load(out)
    assert ckpt.load(naming.last_path(out)).step == (16 if cascade else 4)
    assert (loaded.locator is not None) == cascade
    written = sorted(p.name for p in tmp_path.glob("m*.safetensors"))
    assert written == sorted(
        ["m.last.safetensors", "m.safetensors"]
        + (["m.locator.last.safetensors", "m.locator.safetensors"] if cascade else [])
    )
    image, _ = decathlon.load_task(train_ct_task).cases[0].load()
    labels = Predictor(out).predict(image).labels
    assert labels.shape == image.data.shape and labels.dtype == np.uint8
