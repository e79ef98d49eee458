"""The on-disk cache of prepared cases, keyed by the plan's hash.

``root/<plan hash>/<case>-<digest>.image.npy`` (and ``.label.npy``, ``.json``): a case is
recomputed only when its files change (path, size and modification time are in its key) or when
a cascade asks for another region of interest. Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from napari_volseg import paths
from napari_volseg.events import Progress
from napari_volseg.io.decathlon import Case
from napari_volseg.planning import Plan
from napari_volseg.preprocess import Box, Prepared, apply


class PreparedCache:
    """Preprocessed cases on disk under ``root/<plan hash>/`` (``root``: :func:`napari_volseg.paths.preprocessed_dir`).

    ``hits`` and ``misses`` count the cases read from disk and the cases computed.
    """

    def __init__(self, plan: Plan, root: Path | None = None):
        self.plan = plan
        self.folder = Path(root or paths.preprocessed_dir()) / plan.hash
        self.hits = 0
        self.misses = 0

    def _key(self, case: Case, box: Box | None = None) -> dict:
        files = [case.image_path] + ([case.label_path] if case.label_path else [])
        key = {
            "plan": self.plan.hash,
            "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        }
        if box is not None:
            key["box"] = _box_list(box)
        if case.unlabelled is not None:
            key["unlabelled"] = case.unlabelled
        return key

    def _stem(self, case: Case, box: Box | None = None) -> Path:
        where = str(case.image_path.resolve()) + ("" if box is None else json.dumps(_box_list(box)))
        digest = hashlib.sha1(where.encode()).hexdigest()[:8]
        return self.folder / f"{case.id}-{digest}"

    def is_cached(self, case: Case, box: Box | None = None) -> bool:
        meta = self._stem(case, box).with_suffix(".json")
        try:
            return json.loads(meta.read_text())["key"] == self._key(case, box)
        except (OSError, ValueError, KeyError):
            return False

    def get(self, case: Case, box: Box | None = None) -> Prepared:
        """The case on the plan grid (cropped to ``box`` if given), from disk when cached."""
        stem = self._stem(case, box)
        if self.is_cached(case, box):
            self.hits += 1
            meta = json.loads(stem.with_suffix(".json").read_text())
            label = np.load(f"{stem}.label.npy") if meta["has_label"] else None
            return Prepared(
                image=np.load(f"{stem}.image.npy"),
                label=label,
                box=tuple(tuple(b) for b in meta["box"]),
                source_shape=tuple(meta["source_shape"]),
            )
        self.misses += 1
        image, label = case.load()
        prepared = apply(self.plan, image, label, box=box, unlabelled=case.unlabelled)
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_npy(f"{stem}.image.npy", prepared.image)
        if prepared.label is not None:
            _atomic_npy(f"{stem}.label.npy", prepared.label)
        meta = {
            "key": self._key(case, box),
            "has_label": prepared.label is not None,
            "box": [list(b) for b in prepared.box],
            "source_shape": list(prepared.source_shape),
            "case": case.id,
        }
        tmp = stem.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, stem.with_suffix(".json"))
        return prepared

    def fill(self, cases: list[Case]) -> Iterator[Progress]:
        """Prepare every case that is not cached yet (whole volumes), one :class:`Progress` per case."""
        for i, case in enumerate(cases):
            self.get(case)
            yield Progress(done=i + 1, total=len(cases), item=case.id)


def _box_list(box: Box) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in box]


def _atomic_npy(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)
