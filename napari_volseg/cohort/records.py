"""One record per input of a cohort, and the manifest made of them.

A record is a small JSON file ``OUT/.volseg-cohort/<output name>.json`` written atomically when the scan ends (done
or failed): what was read, what was written, by which model (its SHA-256), the output's SHA-256, size and
modification time, seconds, predicted volume and connected pieces per class, the confidence. It is what makes a rerun
resumable: a scan is complete when its record says done, names the same model checksum, and the output on disk is
the one recorded; anything else (no output, another file, another model, a failure) is done again. Several processes (parts on several machines)
write records side by side and never the same one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from napari_volseg.outputs import atomic_write

RECORDS = ".volseg-cohort"
MANIFEST = "manifest.csv"
STATUSES = ("done", "failed", "skipped", "pending")
"""``skipped``: complete from an earlier run with the same model; ``pending``: another part's, not recorded yet."""


@dataclass
class Record:
    """What happened to one input of a cohort."""

    input: str
    output: str
    status: str = "pending"
    reason: str = ""
    seconds: float = 0.0
    model: str = ""
    model_sha256: str = ""
    settings: str = ""
    """The inference settings given beside the model's own (``overlap``, ``tta``), as JSON: another value redoes it."""
    input_size: int = 0
    input_mtime_ns: int = 0
    output_sha256: str = ""
    output_size: int = 0
    output_mtime_ns: int = 0
    confidence: float | None = None
    """The expected edit share (``metrics.expected_edit_share``, as Annotate ranks by: the voxels the model expects to have
    wrong per voxel it predicts); higher is less sure, ``inf`` when it found nothing."""
    volume_ml: dict[str, float] = field(default_factory=dict)
    pieces: dict[str, int] = field(default_factory=dict)
    """Connected pieces per class of at least a tenth of the class's largest piece."""
    peak_rss_mb: float = 0.0
    """The peak resident memory of the process that predicted it, so far (MB): a worker's footprint."""
    one_piece: list[str] = field(default_factory=list)
    """The classes the model's card says are one piece (its post-processing keeps their largest component)."""
    finished: str = ""


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, or of a folder's files (a MONAI bundle: names and contents, in name order)."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def record_path(out_dir: Path, output: Path) -> Path:
    return out_dir / RECORDS / f"{output.name}.json"


def write_record(out_dir: Path, record: Record) -> Path:
    path = record_path(out_dir, Path(record.output))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(record), indent=1, allow_nan=True)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".json")


def read_record(out_dir: Path, output: Path) -> Record | None:
    """The record of ``output``, or None when there is none or it cannot be read (then the scan is done again)."""
    try:
        data = json.loads(record_path(out_dir, output).read_text())
        return Record(**{k: v for k, v in data.items() if k in Record.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def stamp(record: Record) -> None:
    """Record what the output on disk is: its SHA-256 (provenance), size and modification time (to check it fast)."""
    output = Path(record.output)
    info = output.stat()
    record.output_sha256, record.output_size, record.output_mtime_ns = sha256(output), info.st_size, info.st_mtime_ns


def input_stamp(path: str | os.PathLike) -> tuple[int, int]:
    """``(size, mtime_ns)`` of an input file (a DICOM series folder: ``(0, mtime_ns)``); ``(0, 0)`` when it is gone."""
    try:
        info = Path(path).stat()
    except OSError:
        return 0, 0
    return (0 if Path(path).is_dir() else info.st_size), info.st_mtime_ns


def complete(record: Record | None, model_sha256: str, settings: str, input_path: Path, output_path: Path) -> bool:
    """Whether ``record`` vouches for ``output_path``: done, from this input as it is now (same path, size and
    modification time), by the same model and settings, and the output on disk is the file it recorded (same size and
    modification time: a resume over thousands of outputs hashes none of them again)."""
    if record is None or record.status != "done" or (record.model_sha256, record.settings) != (model_sha256, settings):
        return False
    if record.input != str(input_path) or (record.input_size, record.input_mtime_ns) != input_stamp(input_path):
        return False
    try:
        info = output_path.stat()
    except OSError:
        return False
    return info.st_size == record.output_size and info.st_mtime_ns == record.output_mtime_ns


def manifest_rows(records: list[Record]) -> list[dict]:
    """One row per record: the fixed columns, then ``volume_ml <class>`` and ``pieces <class>`` for every class."""
    classes = sorted({c for r in records for c in r.volume_ml})
    rows = []
    for r in records:
        row = {
            "input": r.input,
            "status": r.status,
            "reason": r.reason,
            "output": r.output if r.status in ("done", "skipped") else "",  # a failed scan has no output
            "seconds": f"{r.seconds:.2f}" if r.seconds else "",
            "confidence": "" if r.confidence is None else f"{r.confidence:.4f}",
            "model": r.model,
            "model_sha256": r.model_sha256,
            "peak_rss_mb": f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb else "",
            "finished": r.finished,
            "one_piece": "|".join(r.one_piece),
        }
        row.update({f"volume_ml {c}": f"{r.volume_ml[c]:.3f}" if c in r.volume_ml else "" for c in classes})
        row.update({f"pieces {c}": r.pieces.get(c, "") for c in classes})
        rows.append(row)
    return rows


def write_manifest(out_dir: Path, records: list[Record]) -> Path:
    """``OUT/manifest.csv``, one row per input, written atomically."""
    rows = manifest_rows(records)

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["input", "status"])
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(out_dir / MANIFEST, write, suffix=".csv")


def join_manifest(rows: list[dict], pred_dir: str | os.PathLike, truth_dir: str | os.PathLike) -> bool:
    """Add a cohort manifest's ``model`` and ``confidence`` to evaluation rows (by the case of each output file), and
    ``trained_on`` where the labels belong to a task whose cases the model's checkpoint lists as its training cases
    (their Dice says little about unseen scans); False when ``pred_dir`` holds no manifest."""
    from napari_volseg.errors import VolsegError
    from napari_volseg.io import decathlon, volumes
    from napari_volseg.zoo.backend import provenance

    if not (Path(pred_dir) / MANIFEST).is_file():
        return False
    by_case = {volumes.case_id(r["output"]): r for r in read_manifest(pred_dir) if r.get("output")}
    task = None
    for folder in (Path(truth_dir).parent, Path(truth_dir)):
        if decathlon.is_task_folder(folder):
            try:
                task = decathlon.load_task(folder)
            except VolsegError:
                pass
            break
    trained: dict[str, set[str]] = {}
    for row in rows:
        entry = by_case.get(row["case"])
        if entry is not None:
            model = entry.get("model", "")
            row.update(model=model, confidence=entry.get("confidence", ""))
            if task is not None and model:
                if model not in trained:
                    trained[model] = provenance(model).trained_in(task.name)
                row["trained_on"] = row["case"] in trained[model]
    return True


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The rows of a ``manifest.csv`` (a folder: its manifest) as dicts of strings."""
    path = Path(path)
    path = path / MANIFEST if path.is_dir() else path
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
