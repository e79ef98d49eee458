"""One real heart MRI as NIfTI, NRRD, MetaImage and a DICOM series: read time, and `volseg predict --model msd-heart`
on each, against the NIfTI's prediction (voxels that differ, world offset of the written labels).

    python bench/formats.py [--case la_007] [--model msd-heart] [--out DIR]

The NRRD and MetaImage files are written by ITK from the NIfTI (``nrrd-PIR``: reoriented by ITK to another voxel
order first); the DICOM series by pydicom, slice by slice, with
random file names (tests/series_writer.py). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from series_writer import write_series  # noqa: E402

from napari_volseg import cli  # noqa: E402
from napari_volseg.io import volumes  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, default=ROOT.parent / "shared" / "data" / "Task02_Heart")
    parser.add_argument("--case", default="la_007")
    parser.add_argument("--model", default="msd-heart")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    source = args.task / "imagesTr" / f"{args.case}.nii.gz"
    if not source.is_file():
        print(f"formats: no {source} (needs ../shared/data)", file=sys.stderr)
        return 2
    work = args.out or Path(tempfile.mkdtemp(prefix="volseg-formats-"))
    scans = {"nifti": source}
    image = sitk.ReadImage(str(source))
    for kind, suffix in (("nrrd", ".nrrd"), ("mha", ".mha")):
        scans[kind] = work / "scans" / kind / f"{args.case}{suffix}"
        scans[kind].parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(scans[kind]), True)
    scans["nrrd-PIR"] = work / "scans" / "nrrd-PIR" / f"{args.case}.nrrd"  # another voxel order, the same world
    scans["nrrd-PIR"].parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.DICOMOrient(image, "PIR"), str(scans["nrrd-PIR"]), True)
    scans["dicom"] = write_series(work / "scans" / "dicom" / args.case, volumes.read(source), modality="MR")
    rows, reference = [], None
    for kind, path in scans.items():
        start = time.perf_counter()
        volume = volumes.read(path)
        read_s = time.perf_counter() - start
        out = work / "pred" / kind
        start = time.perf_counter()
        code = cli.main(["predict", "--model", args.model, "--out", str(out), str(path)])
        predict_s = time.perf_counter() - start
        [written] = sorted(out.iterdir())
        labels = volumes.read(written, label=True)
        if reference is None:
            reference = labels
        offset = float(np.abs(labels.geometry.canonical_affine_xyz - reference.geometry.canonical_affine_xyz).max())
        rows.append(
            {
                "format": kind,
                "read_s": round(read_s, 3),
                "predict_s": round(predict_s, 1),
                "exit": code,
                "written": written.name,
                "voxels_differing": int((labels.data != reference.data).sum()),
                "foreground_voxels": int((labels.data > 0).sum()),
                "max_affine_difference_mm": offset,
                "same_as_nifti_volume": bool(np.array_equal(volume.data, volumes.read(source).data)),
            }
        )
    print(
        f"{'format':8} {'read s':>7} {'predict s':>10} {'written':>20} {'fg voxels':>10} {'differ':>7} {'affine mm':>10}"
    )
    for r in rows:
        print(
            f"{r['format']:9} {r['read_s']:7.3f} {r['predict_s']:10.1f} {r['written']:>20} {r['foreground_voxels']:10d} "
            f"{r['voxels_differing']:7d} {r['max_affine_difference_mm']:10.2g}"
        )
    print(json.dumps({"bench": "formats", "case": args.case, "model": args.model, "rows": rows}))
    return 0 if all(r["exit"] == 0 and r["voxels_differing"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
