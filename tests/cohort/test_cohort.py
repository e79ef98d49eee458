"""Cohorts: every input exactly once over the parts, a bad scan is a failed row while the rest complete, a rerun
skips exactly what is complete (and redoes what a kill -9 left), the manifest joins evaluate, the QC report flags."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_nifti

from napari_volseg import cli
from napari_volseg.cohort import qc
from napari_volseg.cohort.records import read_manifest
from napari_volseg.cohort.shard import part_of, shard
from napari_volseg.errors import SettingsError, VolsegError
from napari_volseg.io import volumes

VOLSEG = str(Path(sys.executable).with_name("volseg"))


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 30])
def test_the_parts_cover_every_input_exactly_once(parts):
    inputs = [Path(f"/scans/case_{i:03d}.nii.gz") for i in (5, 3, 17, 11, 2, 8, 13, 1, 21, 34, 55, 89, 0)]
    shares = [shard(list(reversed(inputs)) if k % 2 else inputs, k, parts) for k in range(parts)]  # any input order
    assert sorted(p for share in shares for p in share) == sorted(inputs)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_the_part_comes_from_flags_or_a_launcher():
    assert part_of(None, None, {}) == (0, 1)
    assert part_of(None, None, {"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert part_of(None, None, {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}) == (1, 3)
    slurm_from_1 = {"SLURM_ARRAY_TASK_ID": "20", "SLURM_ARRAY_TASK_COUNT": "20", "SLURM_ARRAY_TASK_MIN": "1"}
    assert part_of(None, None, slurm_from_1) == (19, 20)  # --array=1-20: the last task is the last part
    assert part_of(0, 2, {"RANK": "1", "WORLD_SIZE": "4"}) == (0, 2)  # the flags win
    for bad in ((3, 3), (-1, 2), (0, 0), (1, None)):
        with pytest.raises(SettingsError):
            part_of(*bad, {})


@pytest.fixture
def cohort(tiny_ct_task, tmp_path):
    """Six scans of the tiny CT task, one corrupt file and one 4D file beside them."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    for f in sorted((tiny_ct_task / "imagesTr").iterdir()):
        shutil.copy(f, folder / f.name)
    (folder / "corrupt.nii.gz").write_bytes(b"not a scan")
    ct = volumes.read(tiny_ct_task / "imagesTr" / "spleen_001.nii.gz").data.T  # a CT in 3 channels: a 4D file
    write_nifti(folder / "four_d.nii.gz", np.stack([ct] * 3, axis=-1).astype(np.float32), sform=np.eye(4))
    return folder


def _rows(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in read_manifest(out)}


def test_a_bad_scan_is_a_failed_row_and_a_rerun_skips_what_is_complete(cohort, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort)]
    assert cli.main(argv) == 1  # some failed: the exit status says so
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("volseg: error: 2 scan(s) failed")
    rows = _rows(out)
    assert len(rows) == 8
    assert rows["corrupt.nii.gz"]["status"] == "failed" and "not a readable NIfTI" in rows["corrupt.nii.gz"]["reason"]
    assert (
        rows["four_d.nii.gz"]["status"] == "failed"
        and "the plan expects 1 channel(s), the image has 3" in rows["four_d.nii.gz"]["reason"]
    )
    done = [r for r in rows.values() if r["status"] == "done"]
    assert len(done) == 6 and all(Path(r["output"]).is_file() and float(r["volume_ml spleen"]) > 0 for r in done)
    assert all(r["confidence"] and r["model_sha256"] for r in done)
    stamps = {r["output"]: Path(r["output"]).stat().st_mtime_ns for r in done}
    # a rerun redoes nothing complete; an output replaced by another file is not complete
    victim = Path(done[0]["output"])
    victim.write_bytes(victim.read_bytes() + b"")  # same bytes, a new file: its recorded stamp no longer matches
    assert cli.main(argv) == 1
    rows = _rows(out)
    assert sorted(r["status"] for r in rows.values()) == ["done", "failed", "failed"] + ["skipped"] * 5
    assert rows[Path(done[0]["input"]).name]["status"] == "done"
    assert all(Path(o).stat().st_mtime_ns == t for o, t in stamps.items() if o != str(victim))


def test_another_model_redoes_everything(cohort, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    for f in ("corrupt.nii.gz", "four_d.nii.gz"):
        (cohort / f).unlink()
    assert cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort)]) == 0
    other = tmp_path / "other.safetensors"
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_checkpoint), "pt") as f:  # the same weights, a new header: another checksum
        save_file({k: f.get_tensor(k) for k in f.keys()}, str(other), {**f.metadata(), "note": "retrained"})
    assert cli.main(["predict", "--model", str(other), "--out", str(out), str(cohort)]) == 0
    assert {r["status"] for r in _rows(out).values()} == {"done"}


def test_two_parts_share_a_cohort_through_the_output_folder(cohort, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    for f in ("corrupt.nii.gz", "four_d.nii.gz"):
        (cohort / f).unlink()
    base = ["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort), "--parts", "2"]
    assert cli.main([*base, "--part", "0"]) == 0
    first = _rows(out)
    assert sorted(r["status"] for r in first.values()) == ["done"] * 3 + ["pending"] * 3
    assert cli.main([*base, "--part", "1"]) == 0
    assert {r["status"] for r in _rows(out).values()} == {"done"}
    capsys.readouterr()
    (cohort / "spleen_001.nii.gz").write_bytes(b"broken")  # part 0's scan fails on its rerun
    assert cli.main([*base, "--part", "0"]) == 1
    assert cli.main([*base, "--part", "1"]) == 0  # the last part ran clean, the cohort did not: it says so
    assert "the whole cohort in" in capsys.readouterr().out.splitlines()[-1]
    assert _rows(out)["spleen_001.nii.gz"]["output"] == ""  # a failed scan names no output
    assert len(list(out.glob("*.nii.gz"))) == 5  # a failed scan's earlier output is removed


@pytest.mark.slow
def test_kill_9_loses_at_most_the_scans_in_flight(tiny_ct_task, tiny_checkpoint, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    scans = sorted((tiny_ct_task / "imagesTr").iterdir())
    for i in range(40):
        shutil.copy(scans[i % len(scans)], folder / f"case_{i:03d}.nii.gz")
    out = tmp_path / "out"
    argv = [VOLSEG, "predict", "--model", str(tiny_checkpoint), "--out", str(out), str(folder)]
    out.mkdir()
    (out / ".case_039.nii.gz.x1y2z3.nii.gz").write_bytes(b"half")  # what a kill mid-write leaves
    run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / ".volseg-cohort"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records.glob("*.json"))) < 5 and run.poll() is None:
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    recorded = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 5 <= len(recorded) < 40, "the kill came too late to test a resume"
    assert subprocess.run(argv, capture_output=True, text=True).returncode == 0
    rows = _rows(out)
    assert sum(r["status"] == "skipped" for r in rows.values()) == len(recorded)
    assert sum(r["status"] == "done" for r in rows.values()) == 40 - len(recorded)
    assert {p.name: p.stat().st_mtime_ns for p in records.glob("*.json") if p.name in recorded} == recorded
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(p.name for p in folder.iterdir())
    assert not list(out.glob(".*.nii.gz*"))  # no temporary left behind by the kill survives the rerun's listing


def test_evaluate_joins_the_manifest(cohort, tiny_ct_task, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    for f in ("corrupt.nii.gz", "four_d.nii.gz"):
        (cohort / f).unlink()
    assert cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort)]) == 0
    table = tmp_path / "scores.csv"
    assert (
        cli.main(["evaluate", "--pred", str(out), "--truth", str(tiny_ct_task / "labelsTr"), "--csv", str(table)]) == 0
    )
    assert "joined" in capsys.readouterr().out
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 6 and all(float(r["confidence"]) > 0 and r["model"] == str(tiny_checkpoint) for r in rows)


def _row(name, ml, share, pieces=1, one_piece="organ"):
    return {
        "input": f"/s/{name}.nii.gz",
        "output": f"/o/{name}.nii.gz",
        "status": "done",
        "confidence": str(share),
        "volume_ml organ": str(ml),
        "pieces organ": str(pieces),
        "one_piece": one_piece,
    }


def test_outliers_are_flagged_for_what_a_reader_would_check():
    rows = [_row(f"ok{i}", 100 + i, 0.05) for i in range(10)]
    rows += [_row("huge", 400, 0.05), _row("empty", 0, float("inf")), _row("split", 101, 0.05, pieces=3)]
    rows += [_row("unsure", 102, 0.8), _row("split_allowed", 101, 0.05, pieces=3, one_piece="")]
    rows.append({**_row("broken", 0, 0), "status": "failed"})
    reasons = {Path(f.row["input"]).stem.split(".")[0]: f.reasons for f in qc.flag(rows)}
    assert "broken" not in reasons  # failed scans are listed apart
    assert [name for name, why in reasons.items() if why] == ["huge", "empty", "split", "unsure"]
    assert "outside the cohort's" in reasons["huge"][0] and reasons["empty"] == ["no organ found"]
    assert "3 large pieces" in reasons["split"][0] and "unsure" in reasons["unsure"][0]


def test_the_report_is_self_contained_with_plots_and_the_flagged_list(cohort, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort)])
    assert cli.main(["qc", str(out)]) == 0
    report = (out / "qc.html").read_text()
    flagged = re.findall(r"<td data-input='([^']+)'", report)
    said = capsys.readouterr().out
    assert f"{len(flagged)} scan(s) flagged" in said
    assert report.count("data:image/png;base64,") >= 2 + len(flagged)  # the two histograms and each thumbnail
    assert not re.search(r"(src|href)=['\"]?https?:", report)  # opens offline
    assert "corrupt.nii.gz" in report and "Failed scans" in report
    with pytest.raises(Exception, match="no manifest.csv"):
        qc.write_report(tmp_path)


def test_identical_volumes_and_a_rare_class_are_no_outliers():
    rows = [{**_row(f"s{i}", 100.0, 0.05), "volume_ml lesion": "0", "pieces lesion": "0"} for i in range(10)]
    rows += [{**_row("lesioned", 100.0, 0.05), "volume_ml lesion": "3.5", "pieces lesion": "1"}]
    rows += [_row("a_bit_more", 104.0, 0.05), _row("nan", 100.0, float("nan"))]
    reasons = {f.row["input"]: f.reasons for f in qc.flag(rows)}
    assert [name for name, why in reasons.items() if why] == ["/s/nan.nii.gz"]  # a MAD of 0 flags no 4 % difference
    assert reasons["/s/nan.nii.gz"] == ["no confidence: the model's probabilities are not numbers"]


def test_other_settings_or_a_changed_scan_are_done_again(cohort, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    for f in ("corrupt.nii.gz", "four_d.nii.gz"):
        (cohort / f).unlink()
    argv = ["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort)]
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--overlap", "0.5"]) == 0  # another setting: every scan again
    assert {r["status"] for r in _rows(out).values()} == {"done"}
    scans = sorted(cohort.iterdir())
    shutil.copy(scans[1], scans[0])  # a scan replaced by another of the same name
    assert cli.main([*argv, "--overlap", "0.5"]) == 0
    rows = _rows(out)
    assert rows[scans[0].name]["status"] == "done"
    assert sorted(r["status"] for r in rows.values()) == ["done"] + ["skipped"] * 5
    assert cli.main(argv) == 0  # back to the model's own overlap: the manifest said nothing stale in between


def test_evaluate_stars_the_models_training_cases_and_gives_the_unseen_mean_apart(
    tiny_ct_task, tiny_checkpoint, tmp_path, capsys
):
    from napari_volseg.io.decathlon import load_task
    from napari_volseg.zoo.backend import provenance

    trained = provenance(tiny_checkpoint).trained_in(load_task(tiny_ct_task).name)
    assert trained and len(trained) < 6  # the tiny model trained on some of these synthetic cases, not all
    out = tmp_path / "out"
    assert (
        cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(tiny_ct_task / "imagesTr")]) == 0
    )
    capsys.readouterr()
    assert cli.main(["evaluate", "--pred", str(out), "--truth", str(tiny_ct_task / "labelsTr")]) == 0
    printed = capsys.readouterr().out
    starred = {line.split()[0] for line in printed.splitlines() if " * " in line}
    assert starred == trained
    assert "never trained on: Dice" in printed and f"over its {len(trained)} training case(s) (*)" in printed


def test_a_scan_that_does_not_fit_the_model_is_one_line():
    from types import SimpleNamespace

    from napari_volseg.cohort.run import model_fits
    from napari_volseg.io.geometry import Volume, geometry_from_spacing

    def volume(data):
        return Volume(np.asarray(data, np.float32), geometry_from_spacing((4, 4, 4)))

    ct_model, mri_model = (SimpleNamespace(plan=SimpleNamespace(normalization=n)) for n in ("ct", "zscore"))
    air_and_tissue = np.full((4, 4, 4), -1000.0)
    air_and_tissue[1:3] = 40.0
    with pytest.raises(VolsegError, match="one value everywhere"):
        model_fits(ct_model, volume(np.zeros((4, 4, 4))), "blank.nii.gz")
    with pytest.raises(VolsegError, match="looks like CT"):
        model_fits(mri_model, volume(air_and_tissue), "ct.nii.gz")
    with pytest.raises(VolsegError, match="does not look like CT"):
        model_fits(ct_model, volume(np.arange(64).reshape(4, 4, 4)), "mri.nii.gz")
    model_fits(ct_model, volume(air_and_tissue), "ct.nii.gz")  # fits: no error
