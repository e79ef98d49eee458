"""What a model is and what it trained on, from its checkpoint's header: which results it made, which cases of a
task (or dropped scans) it has seen. The Predict tab, ``volseg evaluate`` and the cohort manifest star those."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from napari_volseg.engine.checkpoint import Checkpoint, read_meta


@dataclass(frozen=True)
class Provenance:
    """Which model made a result and what it was trained on: ``model`` is its file, resolved (two
    ``best.safetensors`` in different folders are two models); ``task``, ``train_cases`` and the training scans'
    file digests as the checkpoint lists them (empty where it does not say: a MONAI bundle, an older file)."""

    model: str
    task: str = ""
    train_cases: frozenset[str] = frozenset()
    train_digests: frozenset[str] = frozenset()

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Provenance:
        if checkpoint.path is not None and Path(checkpoint.path).is_file():
            return cls.read(checkpoint.path)
        return cls("", checkpoint.task, frozenset(checkpoint.train_cases))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Provenance:
        """From a checkpoint file's header alone (no tensor is read); a file that cannot say lists nothing."""
        meta = read_meta(path)

        def strings(key: str) -> frozenset[str]:
            try:
                found = json.loads(meta.get(key, "[]"))
            except ValueError:
                return frozenset()
            return frozenset(c for c in found if isinstance(c, str)) if isinstance(found, list) else frozenset()

        model = str(Path(path).resolve())
        return cls(model, meta.get("task", ""), strings("train_cases"), strings("train_digests"))

    def trained_in(self, task_name: str) -> frozenset[str]:
        """The cases of the task named ``task_name`` that the model trained on (none for another task's model)."""
        return frozenset() if self.task and self.task != task_name else self.train_cases

    def trained_on(self, case: str, digest: str | None = None) -> bool | None:
        """Whether a scan dropped without a task is one the model trained on: by its name, or where names differ by
        its file's ``digest``; None where the checkpoint lists no case (nobody can say)."""
        if not self.train_cases and not self.train_digests:
            return None
        return case in self.train_cases or (digest is not None and digest in self.train_digests)
