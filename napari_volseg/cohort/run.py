"""Predict a cohort: each input once, in this process or in N worker processes, each scan's end recorded on disk.

:func:`predict_cohort` checks everything that can be checked before the first scan (the output folder, the inputs,
their output names, the model), takes this process's part (:mod:`.shard`), skips what an earlier run completed with
the same model (:mod:`.records`), and predicts the rest. A scan that cannot be read or does not fit the model (4D,
empty, another modality than the model's) is a failed record with its one-line reason; the others go on. A worker
killed mid-scan (``kill -9``, out of memory) loses only the scans in flight: their outputs are written atomically
and have no record, so the next run does them again.
"""

from __future__ import annotations

import collections
import concurrent.futures as futures
import glob
import json
import multiprocessing
import os
import resource
import time
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_volseg.cohort.records import (
    Record,
    complete,
    input_stamp,
    read_record,
    sha256,
    stamp,
    write_manifest,
    write_record,
)
from napari_volseg.cohort.shard import part_of, shard
from napari_volseg.config import InferConfig
from napari_volseg.engine.device import cpu_cores
from napari_volseg.errors import VolsegError
from napari_volseg.events import Progress
from napari_volseg.io import volumes
from napari_volseg.io.inputs import collect_inputs, output_paths
from napari_volseg.io.new_task import looks_like_ct
from napari_volseg.metrics import expected_edit_share
from napari_volseg.outputs import check_writable
from napari_volseg.validation import short
from napari_volseg.zoo.backend import open_model
from napari_volseg.zoo.registry import resolve

PIECE_SHARE = 0.1
"""A connected piece counts when it holds at least this share of its class's largest piece."""


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path
    series: str | None = None


@dataclass
class CohortSummary:
    """The end of a cohort run: counts by status of this part's inputs, and the manifest written."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    manifest: Path | None = None
    failures: list[Record] = field(default_factory=list)
    cohort: dict[str, int] = field(default_factory=dict)
    """The manifest's rows by status: the whole cohort as far as every part's records go."""


def model_fits(predictor, image: volumes.Volume, name: str) -> None:
    """Refuse, in one line, a scan the model cannot segment sensibly: one value everywhere, or another modality than
    the one it was trained on (a CT model normalises by Hounsfield units). Another channel count is the plan's to
    refuse (``preprocess.apply``)."""
    data = image.data
    if data.size == 0 or float(data.min()) == float(data.max()):
        raise VolsegError(f"{name} holds one value everywhere: an empty scan")
    normalization = getattr(getattr(predictor, "plan", None), "normalization", None)
    if normalization == "ct" and not looks_like_ct(data):
        raise VolsegError(f"{name} does not look like CT (nothing near the -1000 HU of air); the model is for CT")
    if normalization == "zscore" and looks_like_ct(data):
        raise VolsegError(f"{name} looks like CT (air at -1000 HU); the model was trained on MRI")


def measure(labels: np.ndarray, voxel_ml: float, names: dict[int, str]) -> tuple[dict[str, float], dict[str, int]]:
    """Predicted volume (mL) and connected pieces (26-connected, each at least :data:`PIECE_SHARE` of the largest)
    per foreground class, labelled within the class's bounding box (a big scan's full grid is never relabelled)."""
    volume_ml, pieces = {}, {}
    for value, name in sorted(names.items()):
        if value == 0:
            continue
        mask = labels == value
        count = int(mask.sum())
        volume_ml[name] = count * voxel_ml
        if count == 0:
            pieces[name] = 0
            continue
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        parts, n = ndimage.label(mask[box], structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(parts.ravel())[1:]
        pieces[name] = int((sizes >= PIECE_SHARE * sizes.max()).sum()) if n else 0
    return volume_ml, pieces


def predict_one(predictor, job: Job, out_dir: Path, model: str, model_sha256: str, settings: str) -> Record:
    """Predict one scan, write its labels and its record; a failure is the record's status and one-line reason (and
    leaves no output: an earlier model's labels for the scan are removed first, so nothing scores them as this one's)."""
    start = time.perf_counter()
    names = {int(k): str(v) for k, v in (getattr(predictor, "labels", {}) or {}).items()}
    post = getattr(predictor, "postprocess", None)
    size, mtime_ns = input_stamp(job.input)
    record = Record(
        input=str(job.input),
        output=str(job.output),
        model=model,
        model_sha256=model_sha256,
        settings=settings,
        input_size=size,
        input_mtime_ns=mtime_ns,
        one_piece=[names.get(c, str(c)) for c in getattr(post, "largest_component", ())],
    )
    try:
        job.output.unlink(missing_ok=True)
        image = volumes.read(job.input, series=job.series)
        model_fits(predictor, image, job.input.name)
        prediction = predictor.predict(image, keep_probabilities=True)
        names = names or {v: f"label {v}" for v in np.unique(prediction.labels) if v}
        volumes.write_labels(job.output, prediction.labels, image.geometry, names)
        stamp(record)
        if prediction.probabilities is not None:
            record.confidence = expected_edit_share(prediction.probabilities)
        record.volume_ml, record.pieces = measure(prediction.labels, image.voxel_ml, names)
        record.status = "done"
    except VolsegError as exc:
        record.status, record.reason = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one scan's failure of any kind (torch, MONAI, numpy) is its row's reason
        record.status, record.reason = "failed", one_line(exc)
    record.seconds = time.perf_counter() - start
    record.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    record.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_record(out_dir, record)
    return record


def one_line(exc: BaseException) -> str:
    """An exception that is no ``VolsegError`` (torch and numpy say theirs in many lines) as one line."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {short(first, 200)}"


_WORKER: dict = {}


def _start_worker(model: str, config: InferConfig | None, overrides: dict) -> None:
    _WORKER["predictor"] = open_model(model, config, **overrides)


def _work(job: Job, out_dir: Path, model: str, model_sha256: str, settings: str) -> Record:
    return predict_one(_WORKER["predictor"], job, out_dir, model, model_sha256, settings)


def plan_jobs(
    inputs: Sequence[str | os.PathLike], out: Path, out_format: str, series: str | None, part: int, parts: int
) -> tuple[list[Job], list[Job]]:
    """Every job of the cohort (output names checked over all of them) and this part's share."""
    files = collect_inputs(inputs, series)
    targets = output_paths(files, out, out_format, series)
    jobs = [Job(f.absolute(), t, series) for f, t in zip(files, targets, strict=True)]
    mine = set(shard([j.output for j in jobs], part, parts))  # by output name: the same on every machine
    return jobs, [j for j in jobs if j.output in mine]


def predict_cohort(
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: InferConfig | None = None,
    *,
    workers: int = 1,
    part: int | None = None,
    parts: int | None = None,
    out_format: str = "source",
    series: str | None = None,
    **overrides,
) -> Iterator[Progress | CohortSummary]:
    """Segment this part of a cohort, yielding :class:`Progress` per scan (``item``: the record's status and input),
    then a :class:`CohortSummary`. ``workers`` processes share the cores (``threads`` each, unless given); the
    manifest ``OUT/manifest.csv`` lists every input of the cohort (other parts' as far as their records go)."""
    if workers < 1:
        raise VolsegError(f"--workers must be at least 1 (got {workers})")
    part, parts = part_of(part, parts)
    out = check_writable(out_dir, folder=True, what="prediction folder")
    jobs, mine = plan_jobs(inputs, out, out_format, series, part, parts)
    model_path = resolve(model)
    model_sha = sha256(model_path)
    settings = json.dumps({k: overrides.get(k) for k in ("overlap", "tta")}, sort_keys=True)
    label = str(model)
    summary = CohortSummary()
    if len(jobs) == 1 and parts == 1:  # one scan is no cohort: as before, it fails in one line and writes no records
        yield from predict_files(model_path, inputs, out, config, out_format=out_format, series=series, **overrides)
        summary.done = 1
        yield summary
        return
    for (
        job
    ) in mine:  # what a kill left mid-write (atomic_write's hidden temporaries): this part's only, never another's
        for left in out.glob(f".{glob.escape(job.output.name)}.*"):
            left.unlink(missing_ok=True)
    todo = [job for job in mine if not _complete(job, out, model_sha, settings)]
    summary.skipped = len(mine) - len(todo)
    total = len(mine)
    yield Progress(done=summary.skipped, total=total, item="")
    if todo:
        predictor = open_model(model_path, config, **overrides)  # a model that does not open: nothing written yet
        out.mkdir(parents=True, exist_ok=True)
        workers = min(workers, len(todo))
        if workers == 1:
            records = (predict_one(predictor, job, out, label, model_sha, settings) for job in todo)
        else:
            del predictor  # each worker opens its own
            threads = overrides.pop("threads", None) or max(1, cpu_cores() // workers)
            records = _in_workers(
                todo, workers, out, (label, model_sha, settings), model_path, config, {**overrides, "threads": threads}
            )
        for record in records:
            if record.status == "done":
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures.append(record)
            done = summary.done + summary.failed + summary.skipped
            yield Progress(done=done, total=total, item=f"{record.status} {Path(record.input).name}")
    waiting = set(todo)
    skipped_now = {str(j.input) for j in mine if j not in waiting}
    rows = _manifest_records(jobs, out, skipped_now, model_sha, settings)
    summary.manifest = write_manifest(out, rows)
    summary.cohort = dict(collections.Counter(r.status for r in rows))
    yield summary


def _complete(job: Job, out: Path, model_sha: str, settings: str) -> bool:
    return complete(read_record(out, job.output), model_sha, settings, job.input, job.output)


def _in_workers(todo, workers, out, stamp_, model_path, config, overrides) -> Iterator[Record]:
    """Records of ``todo`` predicted in ``workers`` processes (spawned: no fork of torch's threads), a few jobs in
    flight each. A worker that dies fails the jobs it may have been predicting (those in flight), and a new pool takes
    the rest; a pool that breaks before finishing any job (its workers cannot open the model) ends the run in one
    line."""
    label, model_sha, settings = stamp_
    pending = collections.deque(todo)
    context = multiprocessing.get_context("spawn")
    while pending:
        finished_any = False
        flying: dict[futures.Future, Job] = {}
        with futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(str(model_path), config, overrides)
        ) as pool:
            try:
                while pending or flying:
                    while pending and len(flying) < 2 * workers:
                        job = pending.popleft()
                        flying[pool.submit(_work, job, out, label, model_sha, settings)] = job
                    done, _ = futures.wait(flying, return_when=futures.FIRST_COMPLETED)
                    for future in done:
                        job = flying.pop(future)
                        try:
                            record = future.result()
                        except BrokenProcessPool:
                            raise
                        except Exception as exc:  # noqa: BLE001 - e.g. the record could not be written there
                            record = _failed(job, out, label, model_sha, one_line(exc))
                        finished_any = True
                        yield record
            except BrokenProcessPool:
                if not finished_any:
                    raise VolsegError(
                        f"the {workers} worker processes died before finishing a scan (they could not open the model, "
                        "or ran out of memory): try fewer --workers"
                    ) from None
                for job in flying.values():
                    yield _failed(job, out, label, model_sha, "the worker process predicting it died (out of memory?)")


def _failed(job: Job, out: Path, label: str, model_sha: str, reason: str) -> Record:
    record = Record(
        input=str(job.input),
        output=str(job.output),
        status="failed",
        reason=reason,
        model=label,
        model_sha256=model_sha,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    write_record(out, record)
    return record


def _manifest_records(jobs: list[Job], out: Path, skipped_now: set[str], model_sha: str, settings: str) -> list[Record]:
    """Every input's latest record: ``skipped`` (completed by an earlier run), ``pending`` (no record yet, or one
    that no longer vouches for its output: another model, other settings, a changed scan)."""
    rows = []
    for job in jobs:
        record = read_record(out, job.output) or Record(input=str(job.input), output=str(job.output))
        if record.status == "done" and not complete(record, model_sha, settings, job.input, job.output):
            record.status, record.reason = "pending", "done by another model, other settings, or the scan changed since"
        elif str(job.input) in skipped_now and record.status == "done":
            record.status, record.reason = "skipped", f"done by an earlier run ({record.finished}) with this model"
        rows.append(record)
    return rows


def predict_files(
    checkpoint: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: InferConfig | None = None,
    *,
    out_format: str = "source",
    series: str | None = None,
    **overrides,
) -> Iterator[Progress]:
    """Segment each input with a model (path, name or MONAI bundle folder) and write ``out_dir/<case>.<ext>`` in
    that input's own world geometry (``out_format``: :data:`io.volumes.OUT_FORMATS`; ``dicom-seg`` writes a DICOM
    Segmentation referencing a DICOM input's series). ``series`` picks the DICOM series of a folder holding several.
    The output folder, the inputs and the model are all checked before the first prediction; ``Progress.item`` is
    the file written."""
    out = check_writable(out_dir, folder=True, what="prediction folder")
    files = collect_inputs(inputs, series)
    targets = output_paths(files, out, out_format, series)
    predictor = open_model(checkpoint, config, **overrides)
    names = dict(getattr(predictor, "labels", {}) or {})
    for i, (path, target) in enumerate(zip(files, targets, strict=True)):
        image = volumes.read(path, series=series)
        prediction = predictor.predict(image)
        volumes.write_labels(target, prediction.labels, image.geometry, names)
        yield Progress(done=i + 1, total=len(files), item=str(target))
    predictor.release()
