"""The `volseg` command line: synth, download, demo --headless; errors are one line and exit 1."""

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_volseg import cli
from napari_volseg.io import decathlon


def test_synth_writes_a_loadable_task(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "T"), "--cases", "2", "--kind", "mri"]) == 0
    task = decathlon.load_task(tmp_path / "T")
    assert len(task.cases) == 2 and task.kind == "mri"
    assert "wrote 2 synthetic MRI" in capsys.readouterr().out


@pytest.mark.slow
def test_headless_demo_trains_predicts_and_writes_screenshot_and_metrics(tmp_path, train_ct_task):
    out = tmp_path / "demo out"
    assert cli.main(["demo", "--headless", "--out", str(out), "--data", str(train_ct_task), "--minutes", "0.2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "SyntheticSpleen" and len(metrics["cases"]) == 1 and metrics["steps"] > 0
    assert 0.0 <= metrics["mean_dice"] <= 1.0 and "spleen" in metrics["cases"][0]["dice"]
    import imageio.v3 as iio

    picture = iio.imread(out / "screenshot.png")
    assert picture.ndim == 3 and picture.shape[2] == 3
    green = (picture[..., 1] > 200) & (picture[..., 0] < 100)
    assert green.sum() > 20  # the ground-truth outline is drawn


@pytest.mark.slow
def test_errors_are_one_line_and_exit_1(tmp_path):
    (tmp_path / "dataset.json").write_text("{broken")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_volseg.cli",
            "demo",
            "--headless",
            "--out",
            str(tmp_path / "o"),
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("volseg: error:")
    assert "not valid JSON" in result.stderr


@pytest.mark.slow
def test_console_script_is_installed():
    from pathlib import Path

    exe = Path(sys.executable).with_name("volseg")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "synth" in result.stdout and "demo" in result.stdout
    assert np.all([c in result.stdout for c in ("download",)])
