"""`volseg train | predict | evaluate | preprocess | models | presets` as scripts call them."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_volseg import cli
from napari_volseg.cache import PreparedCache
from napari_volseg.io import nifti

VOLSEG = str(Path(sys.executable).with_name("volseg"))


@pytest.mark.slow
def test_train_predict_evaluate_round_trip(train_ct_task, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.safetensors"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(train_ct_task),
                "--preset",
                "fast-cpu",
                "--out",
                str(model),
                "--epochs",
                "1",
                "--val-cases",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert model.is_file() and model.with_name("model.last.safetensors").is_file()
    assert "best validation Dice" in capsys.readouterr().out
    out = tmp_path / "pred"
    assert cli.main(["predict", "--model", str(model), "--out", str(out), str(train_ct_task / "imagesTr")]) == 0
    written = sorted(p.name for p in out.glob("*.nii.gz"))
    assert written == sorted(p.name for p in (train_ct_task / "imagesTr").iterdir())
    assert (out / "manifest.csv").is_file()  # a cohort of several scans: one manifest row each
    src = nifti.load(train_ct_task / "imagesTr" / written[0])
    got = nifti.load(out / written[0], label=True)
    assert got.data.shape == src.data.shape and np.array_equal(got.affine, src.affine)
    table = tmp_path / "dice.csv"
    assert (
        cli.main(["evaluate", "--pred", str(out), "--truth", str(train_ct_task / "labelsTr"), "--csv", str(table)]) == 0
    )
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 6 and rows[0]["name"] == "spleen"
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    printed = capsys.readouterr().out
    assert "mean class 1: Dice" in printed and "not scored" not in printed
    (out / "extra_999.nii.gz").write_bytes((out / written[0]).read_bytes())  # a prediction with no label
    assert cli.main(["evaluate", "--pred", str(out), "--truth", str(train_ct_task / "labelsTr")]) == 0
    printed = capsys.readouterr().out
    assert f"not scored, no label of the same name in {train_ct_task / 'labelsTr'}: extra_999" in printed
    assert "(6 cases)" in printed


@pytest.mark.slow
def test_preprocess_caches_and_a_second_run_recomputes_nothing(train_ct_task, tmp_path):
    env = {"VOLSEG_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [VOLSEG, "preprocess", "--data", str(train_ct_task)], capture_output=True, text=True, env=env
    )
    second = subprocess.run(
        [VOLSEG, "preprocess", "--data", str(train_ct_task)], capture_output=True, text=True, env=env
    )
    assert "6 case(s) preprocessed, 0 already cached" in first.stdout
    assert "0 case(s) preprocessed, 6 already cached" in second.stdout


@pytest.mark.slow
def test_models_and_presets_lists():
    models = subprocess.run([VOLSEG, "models"], capture_output=True, text=True).stdout
    assert "22,578,946" in models and "5,602,306" in models and "cpu-lean" in models
    presets = subprocess.run([VOLSEG, "presets"], capture_output=True, text=True).stdout.splitlines()
    names = {line.split()[0] for line in presets}
    assert {
        "fast-cpu",
        "seed-exp1-heart-ce",
        "seed-exp2-heart-ce",
        "seed-exp2-heart-dice",
        "seed-exp2-spleen-ce",
        "seed-exp2-spleen-dice",
    } <= names


@pytest.mark.slow
def test_user_errors_are_one_line_with_exit_1(tmp_path, train_ct_task):
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    cases = [
        ["predict", "--model", str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "o"), str(tmp_path)],
        ["train", "--data", str(train_ct_task), "--preset", "no-such-preset", "--out", str(tmp_path / "m.safetensors")],
        ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.safetensors")],
        ["evaluate", "--pred", str(tmp_path / "none"), "--truth", str(tmp_path)],
    ]
    for argv in cases:
        result = subprocess.run([VOLSEG, *argv], capture_output=True, text=True)
        assert result.returncode == 1, (argv, result.stderr)
        assert result.stderr.startswith("volseg: error:") and result.stderr.strip().count("\n") == 0, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("cascade", [False, True], ids=["single", "cascade"])
def test_train_reads_the_cache_volseg_preprocess_wrote(train_ct_task, tmp_path, monkeypatch, cascade):
    """`volseg preprocess` then `volseg train` on a CT task: training recomputes no case (its plan,
    CT statistics included, comes from the same training split). A cascade caches its locator's grid."""
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    caches = []
    original = PreparedCache.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        caches.append(self)

    monkeypatch.setattr(PreparedCache, "__init__", spy)
    preset = tmp_path / "tiny.yaml"
    plan = "{max_voxels: 20000, cascade: true, locator_voxels: 4000, roi_margin_mm: 10}" if cascade else "{}"
    preset.write_text(
        f"name: tiny\nplan: {plan}\ntrain: {{epochs: 1, iterations_per_epoch: 2, val_every: 1, "
        "patch_size: [16, 32, 32], threads: 2}\n"
    )
    assert cli.main(["preprocess", "--data", str(train_ct_task), "--preset", str(preset)]) == 0
    assert (caches[0].misses, caches[0].hits) == (6, 0)
    out = tmp_path / "m.safetensors"
    assert cli.main(["train", "--data", str(train_ct_task), "--preset", str(preset), "--out", str(out)]) == 0
    trainer_cache = caches[1]  # the cascade's locator stage, or the one network
    assert trainer_cache.folder == caches[0].folder and (trainer_cache.misses, trainer_cache.hits) == (0, 6)
    assert len(caches) == (3 if cascade else 2)  # the main stage's regions of interest are cut while training


def test_train_without_validation_names_its_weights_not_a_nan_dice(train_ct_task, tmp_path, monkeypatch, capsys):
    """`--val-cases 0` (nothing to select on): the closing line says which weights the model holds, never "nan"."""
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "name: tiny\ntrain: {epochs: 2, iterations_per_epoch: 2, val_every: 1, average_last: 2, "
        "patch_size: [16, 32, 32], threads: 2}\n"
    )
    out = tmp_path / "m.safetensors"
    argv = ["train", "--data", str(train_ct_task), "--preset", str(preset), "--out", str(out), "--val-cases", "0"]
    assert cli.main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "nan" not in last.replace(str(out), "").lower()
    assert last.endswith(f"no validation ran, the model is the mean of the weights at steps 2, 4; checkpoint {out}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_during_train_is_stop_and_leaves_the_model(train_ct_task, tmp_path, signum):
    """Ctrl-C (or SIGTERM from a scheduler) while `volseg train` runs ends the run as Stop does: the model stays at
    --out, the last line names it, exit 0 (it printed "interrupted" and exited 130 with whatever was saved)."""
    import os
    import signal
    import time

    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "name: tiny\ntrain: {epochs: 500, iterations_per_epoch: 2, val_every: 1, patch_size: [16, 32, 32], threads: 2}\n"
    )
    out = tmp_path / "m.safetensors"
    env = {**os.environ, "VOLSEG_CACHE": str(tmp_path / "cache")}
    argv = [VOLSEG, "train", "--data", str(train_ct_task), "--preset", str(preset), "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not out.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert out.is_file(), proc.communicate()
    proc.send_signal(getattr(signal, signum))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"{signum}: stopping after this step" in stderr and "Traceback" not in stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("stopped at step") and last.endswith(f"checkpoint {out}")
    assert "best validation Dice" in last
