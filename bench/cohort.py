"""A cohort through `volseg predict`: throughput with 1 and 2 workers, memory per worker, and a kill -9 then resume.

    python bench/cohort.py [--model msd-hippocampus] [--inputs DIR] [--limit N] [--out DIR]

On the shared hippocampus cases (200 small MRIs) by default; `--model msd-heart --inputs .../Task02_Heart/imagesTr
--limit 6` gives a heart subset. Runs, one at a time on the same inputs: an unbroken run with 1 worker, one with 2
workers (throughput ratio), and a 2-worker run killed with SIGKILL (the whole process group) once a third of the
scans are recorded, then resumed: scans redone, total time against the unbroken run, every output compared voxel by
voxel with the unbroken run's. Memory: the manifest's peak RSS per worker against a plain single-scan
`volseg predict`. Prints a table, then one JSON line. Time it on idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VOLSEG = str(Path(sys.executable).with_name("volseg"))


def run(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - start, code


def manifest(out: Path) -> list[dict]:
    from napari_volseg.cohort.records import read_manifest

    return read_manifest(out)


def single_scan_rss(model: str, scan: Path, work: Path) -> float:
    """Peak RSS (MB) of a plain `volseg predict` of one scan: this bench's first child, so the largest so far."""
    subprocess.run([VOLSEG, "predict", "--model", model, "--out", str(work / "single"), str(scan)], capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="msd-hippocampus")
    parser.add_argument(
        "--inputs", type=Path, default=ROOT.parent / "shared" / "data" / "Task04_Hippocampus" / "imagesTr"
    )
    parser.add_argument("--limit", type=int, default=0, help="the first N scans only (0: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.inputs.is_dir():
        print(f"cohort: no {args.inputs} (needs ../shared/data)", file=sys.stderr)
        return 2
    work = args.out or Path(tempfile.mkdtemp(prefix="volseg-cohort-"))
    scans = sorted(p for p in args.inputs.iterdir() if p.name.endswith(".nii.gz") and not p.name.startswith("."))
    if args.limit:
        scans = scans[: args.limit]
    inputs = work / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    for s in scans:
        (inputs / s.name).symlink_to(s.resolve())
    n = len(scans)
    rss_single = single_scan_rss(args.model, scans[0], work)
    base = [VOLSEG, "predict", "--model", args.model, str(inputs)]
    t1, c1 = run([*base, "--out", str(work / "w1"), "--workers", "1"])
    t2, c2 = run([*base, "--out", str(work / "w2"), "--workers", "2"])
    # killed once a third is recorded, then resumed
    out_k = work / "killed"
    shutil.rmtree(out_k, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*base, "--out", str(out_k), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    records = out_k / ".volseg-cohort"
    while proc.poll() is None and len(list(records.glob("*.json"))) < n // 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    t_killed = time.perf_counter() - start
    at_kill = len(list(records.glob("*.json")))
    t_resume, c_resume = run([*base, "--out", str(out_k), "--workers", "2"])
    rows = manifest(out_k)
    redone = sum(r["status"] == "done" for r in rows)
    skipped = sum(r["status"] == "skipped" for r in rows)
    from napari_volseg.io import volumes

    differ = 0
    for f in sorted((work / "w1").glob("*.nii.gz")):
        a = volumes.read(f, label=True).data
        b = volumes.read(out_k / f.name, label=True).data
        differ += int(not np.array_equal(a, b))
    rss_workers = [float(r["peak_rss_mb"]) for r in manifest(work / "w2") if r.get("peak_rss_mb")]
    result = {
        "bench": "cohort",
        "model": args.model,
        "scans": n,
        "exit_codes": [c1, c2, c_resume],
        "scans_per_min_1_worker": round(n / t1 * 60, 1),
        "scans_per_min_2_workers": round(n / t2 * 60, 1),
        "speedup_2_workers": round(t1 / t2, 2),
        "killed_after_s": round(t_killed, 1),
        "recorded_at_kill": at_kill,
        "resume_s": round(t_resume, 1),
        "redone_after_kill": redone,
        "skipped_after_kill": skipped,
        "killed_plus_resume_vs_unbroken_2_workers": round((t_killed + t_resume) / t2, 2),
        "outputs_differing_from_unbroken": differ,
        "peak_rss_mb_single_predict": round(rss_single),
        "peak_rss_mb_per_worker_max": round(max(rss_workers)) if rss_workers else None,
    }
    print(f"{'what':44} {'value':>10}")
    for key, value in result.items():
        if key != "bench":
            print(f"{key:44} {value!s:>10}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
