"""The cohort's quality control: outliers found in the manifest, and ``qc.html``, a self-contained report.

A scan is flagged when its prediction is empty for a class, its volume for a class lies beyond the cohort's robust
range (median +- 3 scaled MADs of the done scans, with at least :data:`MIN_SCANS`), a class the model's card says is
one piece comes in several large pieces, or the model is unsure of it (its expected edit share beyond the cohort's
robust range, or above :data:`UNSURE`). The report (matplotlib figures and thumbnails embedded as PNG, a sortable
table, no network) shows the volume distribution per class, the confidence distribution, each flagged scan with the
reasons and its mid-slices with the prediction, and the failed scans with theirs.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_volseg.cohort.records import read_manifest
from napari_volseg.errors import VolsegError
from napari_volseg.io import volumes
from napari_volseg.outputs import atomic_write

MIN_SCANS = 5
"""Fewer done scans than this give no robust range: only empty, several-piece and unsure predictions are flagged."""
MAD_SCALE = 3.0
UNSURE = 0.5
"""An expected edit share above this (half the predicted voxels expected wrong) is unsure in any cohort."""
REPORT = "qc.html"


@dataclass
class Flagged:
    """One scan of the manifest and why it is flagged (empty: it is not)."""

    row: dict
    reasons: list[str] = field(default_factory=list)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value


MIN_HALF_WIDTH = 0.1
"""The robust range is at least this share of the median on either side: a cohort of near-identical values (a MAD
of 0) must not flag every scan that differs in the last digit."""


def robust_range(values: list[float]) -> tuple[float, float] | None:
    """``median +- max(3 * 1.4826 * MAD, 0.1 * |median|)`` of the finite values, or None with fewer than
    :data:`MIN_SCANS`."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size < MIN_SCANS:
        return None
    median = float(np.median(finite))
    half = max(MAD_SCALE * 1.4826 * float(np.median(np.abs(finite - median))), MIN_HALF_WIDTH * abs(median))
    return median - half, median + half


def flag(rows: list[dict]) -> list[Flagged]:
    """Every done or skipped row of a manifest with the reasons it is an outlier (none: not flagged)."""
    rows = [r for r in rows if r.get("status") in ("done", "skipped")]
    classes = [k[len("volume_ml ") :] for k in (rows[0] if rows else {}) if k.startswith("volume_ml ")]
    volumes_of = {c: [_number(r.get(f"volume_ml {c}")) for r in rows] for c in classes}
    ranges = {c: robust_range([v for v in vs if v]) for c, vs in volumes_of.items()}  # over scans that have it
    usual = {c: sum(bool(v) for v in vs) > len(vs) / 2 for c, vs in volumes_of.items()}  # found in most scans
    confidence_range = robust_range([_number(r.get("confidence")) for r in rows])
    flagged = []
    for row in rows:
        reasons = []
        one_piece = set(filter(None, (row.get("one_piece") or "").split("|")))
        for c in classes:
            ml = _number(row.get(f"volume_ml {c}"))
            if ml is None:
                continue
            if ml == 0:
                if usual[c]:  # a class most scans lack (a lesion) is no finding where it is absent
                    reasons.append(f"no {c} found")
            elif ranges[c] and not ranges[c][0] <= ml <= ranges[c][1]:
                lo, hi = ranges[c]
                reasons.append(f"{c} {ml:.1f} mL, outside the cohort's {max(lo, 0):.1f}-{hi:.1f} mL")
            pieces = _number(row.get(f"pieces {c}"))
            if c in one_piece and pieces is not None and pieces > 1:
                reasons.append(f"{c} in {int(pieces)} large pieces; the model's card says one")
        share = _number(row.get("confidence"))
        if share is not None and math.isnan(share):
            reasons.append("no confidence: the model's probabilities are not numbers")
        elif share is not None and math.isfinite(share):  # infinite: nothing found, said above
            if share > UNSURE or (confidence_range and share > confidence_range[1]):
                reasons.append(f"unsure: expected edit share {share:.2f}")
        flagged.append(Flagged(row, reasons))
    return flagged


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float, height: float, columns: int = 1):
    """A matplotlib figure of its own (no pyplot: nothing global changes in a napari process, and threads may draw)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    axes = figure.subplots(1, columns)
    return figure, axes


def _figures(rows: list[dict], classes: list[str]) -> list[tuple[str, str]]:
    done = [r for r in rows if r.get("status") in ("done", "skipped")]
    figures = []
    for c in classes:
        values = [v for v in (_number(r.get(f"volume_ml {c}")) for r in done) if v is not None]
        fig, ax = _figure(4.2, 2.6)
        ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#ff2dd1")
        ax.set_xlabel(f"predicted {c} (mL)")
        ax.set_ylabel("scans")
        ax.locator_params(axis="x", nbins=5)
        bounds = robust_range(values)
        for bound in bounds or ():
            ax.axvline(bound, color="#555", linestyle="--", linewidth=1)
        figures.append((f"Volume: {c}", _png(fig)))
    shares = [v for v in (_number(r.get("confidence")) for r in done) if v is not None and math.isfinite(v)]
    fig, ax = _figure(4.2, 2.6)
    ax.hist(shares, bins=min(40, max(5, len(shares) // 3)), color="#0a84ff")
    ax.set_xlabel("expected edit share (lower: surer)")
    ax.set_ylabel("scans")
    for bound in (robust_range(shares) or ())[1:]:  # only the upper end flags (unsure)
        ax.axvline(bound, color="#555", linestyle="--", linewidth=1)
    ax.locator_params(axis="x", nbins=4)  # shares differ in the third decimal: fewer ticks, none run together
    figures.append(("Confidence", _png(fig)))
    return figures


def thumbnail(image_path: str, labels_path: str) -> str | None:
    """Axial, coronal and sagittal mid-slices through the prediction's centre (the scan's centre when it is
    empty), the prediction in magenta over the scan, as an embedded PNG; None when either cannot be read."""
    try:
        image = volumes.read(image_path)
        labels = volumes.read(labels_path, label=True).data
    except Exception:  # noqa: BLE001 - one unreadable scan leaves its thumbnail out, not the report
        return None
    data = image.data if image.data.ndim == 3 else image.data[0]
    found = (labels > 0).astype(np.uint8)
    box = ndimage.find_objects(found)[0] if found.any() else None  # the first class's box would miss the others
    centre = np.array([(s.start + s.stop) // 2 for s in box]) if box else np.array(labels.shape) // 2
    lo, hi = np.percentile(data[::2, ::2, ::2], [1, 99])
    fig, axes = _figure(6.6, 2.3, columns=3)
    sz, sy, sx = image.spacing
    views = (  # axial: anterior up; coronal and sagittal: superior up (z grows upward, hence origin "lower")
        (data[centre[0]], labels[centre[0]], sy / sx, "upper"),
        (data[:, centre[1], :], labels[:, centre[1], :], sz / sx, "lower"),
        (data[:, :, centre[2]], labels[:, :, centre[2]], sz / sy, "lower"),
    )
    for ax, (plane, mask, aspect, origin) in zip(axes, views, strict=True):
        ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, origin=origin)
        ax.imshow(np.ma.masked_equal(mask, 0), cmap="spring", alpha=0.45, aspect=aspect, origin=origin)
        ax.axis("off")
    return _png(fig)


def write_report(out_dir: str | os.PathLike, thumbnails: bool = True) -> tuple[Path, list[Flagged]]:
    """Write ``OUT/qc.html`` from ``OUT/manifest.csv`` (and the scans and predictions it names); returns the
    report and the flagged scans."""
    out = Path(out_dir)
    if not out.is_dir():
        raise VolsegError(f"no such folder: {out}")
    if not (out / "manifest.csv").is_file():
        raise VolsegError(f"{out} has no manifest.csv: run `volseg predict ... --out {out}` on a cohort first")
    rows = read_manifest(out)
    classes = [k[len("volume_ml ") :] for k in (rows[0] if rows else {}) if k.startswith("volume_ml ")]
    flagged = [f for f in flag(rows) if f.reasons]
    failed = [r for r in rows if r.get("status") == "failed"]
    counts = {s: sum(r.get("status") == s for r in rows) for s in ("done", "skipped", "failed", "pending")}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>napari-volseg cohort QC</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Cohort QC: {html.escape(out.name)}</h1>",
        f"<p>{len(rows)} scans: {counts['done'] + counts['skipped']} segmented, {counts['failed']} failed, "
        f"{counts['pending']} pending; <b>{len(flagged)} flagged</b>. Model: "
        f"{html.escape(rows[0].get('model', '') if rows else '')}</p>",
        "<div class='figures'>",
    ]
    for title, src in _figures(rows, classes):
        parts.append(
            f"<figure><img src='{src}' alt='{html.escape(title)}'><figcaption>{html.escape(title)}"
            "</figcaption></figure>"
        )
    parts.append(
        "</div><h2>Flagged scans</h2><p>Thumbnails: mid-slices through the prediction (axial, coronal, sagittal), "
        "each predicted class in its own colour over the scan (first class magenta, second yellow). Click a column "
        "to sort.</p>"
    )
    parts.append(_table(flagged, classes, thumbnails))
    if failed:
        parts.append("<h2>Failed scans</h2><table id='failed'><tr><th>scan</th><th>reason</th></tr>")
        parts += [
            f"<tr><td title='{html.escape(r['input'])}'>{html.escape(Path(r['input']).name)}</td>"
            f"<td>{html.escape(r['reason'])}</td></tr>"
            for r in failed
        ]
        parts.append("</table>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    text = "\n".join(parts)
    report = atomic_write(out / REPORT, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), suffix=".html")
    return report, flagged


def _table(flagged: list[Flagged], classes: list[str], thumbnails: bool) -> str:
    head = ["scan", "why", "confidence", *(f"{c} (mL)" for c in classes), "prediction"]
    rows = ["<table id='flagged' class='sortable'><thead><tr>"]
    rows += [f"<th data-column='{i}'>{html.escape(h)}</th>" for i, h in enumerate(head)]
    rows.append("</tr></thead><tbody>")
    for f in flagged:
        r = f.row
        picture = thumbnail(r["input"], r["output"]) if thumbnails else None
        cells = [
            f"<td data-input='{html.escape(r['input'])}' data-output='{html.escape(r['output'])}'>"
            f"{html.escape(Path(r['input']).name)}</td>",
            f"<td>{html.escape('; '.join(f.reasons))}</td>",
            f"<td>{html.escape(r.get('confidence', ''))}</td>",
            *(f"<td>{html.escape(r.get(f'volume_ml {c}', ''))}</td>" for c in classes),
            f"<td>{f'<img src={chr(39)}{picture}{chr(39)} alt=mid-slices>' if picture else ''}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:middle}th{cursor:pointer;background:#eee}
.figures{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:12px;text-align:center}"""
SCRIPT = """document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
var t=th.closest('table'),b=t.tBodies[0],i=+th.dataset.column,asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
var rows=Array.from(b.rows);rows.sort(function(x,y){var a=x.cells[i].textContent,c=y.cells[i].textContent,
n=parseFloat(a),m=parseFloat(c);var r=(!isNaN(n)&&!isNaN(m))?n-m:a.localeCompare(c);return asc?r:-r;});
rows.forEach(function(r){b.appendChild(r);});});});"""
