"""Which inputs a process takes: a deterministic share of the sorted inputs, so that K processes on K machines cover
every input exactly once with nothing shared but the output folder (nnU-Net's ``-num_parts / -part_id``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from napari_volseg.errors import SettingsError

RANK_VARIABLES = (("RANK", "WORLD_SIZE"), ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"))
"""Where a launcher says which part this process is: torchrun's, then a SLURM job array's (counted from
``SLURM_ARRAY_TASK_MIN``, so ``--array=1-20`` is parts 0 .. 19; the array's ids must be contiguous)."""


def part_of(part: int | None, parts: int | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(part, parts)`` from the flags, else from a launcher's environment (:data:`RANK_VARIABLES`), else ``(0, 1)``.

    Raises :class:`SettingsError` (one line) for a part outside ``0 .. parts - 1`` or one flag without the other."""
    env = os.environ if env is None else env
    if (part is None) != (parts is None):
        raise SettingsError("--part and --parts go together: --part I --parts K, with 0 <= I < K")
    if part is None:
        for rank, size in RANK_VARIABLES:
            if env.get(rank) not in (None, "") and env.get(size) not in (None, ""):
                first = env.get("SLURM_ARRAY_TASK_MIN", "0") if rank.startswith("SLURM") else "0"  # --array=1-20
                try:
                    part, parts = int(env[rank]) - int(first), int(env[size])
                except ValueError as exc:
                    raise SettingsError(f"{rank}={env[rank]!r} / {size}={env[size]!r} are not whole numbers") from exc
                break
        else:
            return 0, 1
    if parts < 1 or not 0 <= part < parts:
        raise SettingsError(f"part {part} of {parts} does not exist: the parts are 0 .. {max(parts, 1) - 1}")
    return part, parts


def shard(inputs: Sequence[Path], part: int, parts: int) -> list[Path]:
    """Every ``parts``-th item of ``inputs`` sorted by path, starting at ``part``: the same share for the same items on
    any machine, and the shares of ``0 .. parts - 1`` cover every item exactly once. A cohort shards its output paths
    (unique names in one folder), so how each machine spells its input paths does not matter."""
    return sorted(inputs, key=lambda p: str(p))[part::parts]
