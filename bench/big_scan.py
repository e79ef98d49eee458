"""Peak memory of `volseg predict` on one big CT (512 x 512 x 400), with and without largest-component post-processing.

    python bench/big_scan.py [--out DIR] [--minutes 1]

Trains `fast-cpu` for a minute on the synthetic CT task (`volseg synth`, `volseg train`), writes two copies of the
checkpoint that differ only in their post-processing record (none / keep the largest component of every class),
upsamples a synthetic CT phantom to 400 x 512 x 512 int16 voxels (210 MB), and runs `volseg predict` on it with each,
as a child process measured by getrusage (peak RSS of the process). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_volseg.config import DEFAULT_PRESET

VOLSEG = str(Path(sys.executable).with_name("volseg"))


def peak_mb(argv: list[str]) -> tuple[float, float, int]:
    """Peak RSS (MB) and seconds of one child process (run through a tiny wrapper, so each child is measured alone)."""
    wrapper = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *argv], capture_output=True, text=True)
    rss_kb, code = done.stdout.split()[-2:]
    return int(rss_kb) / 1024, time.perf_counter() - start, int(code)


def with_postprocess(source: Path, target: Path, classes: list[int]) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from napari_volseg import postprocess as post

    decision = post.PostProcess(tuple(classes), "training labels" if classes else "", 1 if classes else 0)
    with safe_open(str(source), "pt") as f:
        meta = {**f.metadata(), post.METADATA_KEY: post.to_metadata(decision)}
        save_file({k: f.get_tensor(k) for k in f.keys()}, str(target), meta)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="volseg-big-"))
    work.mkdir(parents=True, exist_ok=True)
    task = work / "Task90_SynthCT"
    model = work / "model.safetensors"
    if not model.is_file():
        subprocess.run([VOLSEG, "synth", "--out", str(task), "--cases", "8", "--kind", "ct"], check=True)
        subprocess.run(
            [
                VOLSEG,
                "train",
                "--data",
                str(task),
                "--preset",
                DEFAULT_PRESET,
                "--out",
                str(model),
                "--minutes",
                str(args.minutes),
            ],
            check=True,
        )
    from napari_volseg.io import volumes

    big = work / "big_ct.nii.gz"
    if not big.is_file():
        scan = volumes.read(task / "imagesTr" / "spleen_001.nii.gz")
        factors = [t / s for t, s in zip((400, 512, 512), scan.data.shape, strict=True)]
        data = ndimage.zoom(scan.data.astype(np.float32), factors, order=1).astype(np.int16)
        spacing = [s / f for s, f in zip(scan.spacing, factors, strict=True)]
        from napari_volseg.io.geometry import geometry_from_spacing

        volumes.write_image(big, data, geometry_from_spacing(data.shape, spacing))
    rows = []
    for name, classes in (("keep every component", []), ("largest component", [1])):
        checkpoint = with_postprocess(model, work / f"model-{len(classes)}.safetensors", classes)
        mb, seconds, code = peak_mb(
            [VOLSEG, "predict", "--model", str(checkpoint), "--out", str(work / name.replace(" ", "-")), str(big)]
        )
        rows.append({"postprocess": name, "peak_mb": round(mb), "seconds": round(seconds, 1), "exit": code})
    print(f"{'post-processing':24} {'peak MB':>8} {'seconds':>8}")
    for r in rows:
        print(f"{r['postprocess']:24} {r['peak_mb']:8d} {r['seconds']:8.1f}")
    print(json.dumps({"bench": "big_scan", "shape_zyx": [400, 512, 512], "rows": rows}))
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
