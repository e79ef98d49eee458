"""Add the training scans' file digests to a checkpoint trained before runs recorded them (the shipped models).

A checkpoint lists its training cases by name; with their scans' file digests too, a training scan dropped on
napari under another name is still starred as one the model trained on (issue 26 item 5). The weights and every
other field are kept; the file is rewritten atomically.

    .venv/bin/python training/card_digests.py --model napari_volseg/zoo/pretrained/msd-heart.safetensors \
        --data ../shared/data/Task02_Heart
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.io import decathlon, volumes


def add_digests(model: Path, data: Path) -> tuple[int, int]:
    """Digests of the listed training cases found in task ``data``; (found, listed)."""
    meta = ckpt.read_meta(model)
    cases = json.loads(meta.get("train_cases", "[]"))
    task = decathlon.load_task(data)
    by_id = {c.id: c for c in task.cases + task.test_cases}
    digests = sorted(d for c in cases if c in by_id and (d := volumes.file_digest(by_id[c].image_path)))
    meta["train_digests"] = json.dumps(digests)
    ckpt.write_atomic(model, load_file(str(model)), meta)
    return len(digests), len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the task folder holding its training cases")
    args = parser.parse_args()
    found, listed = add_digests(args.model, args.data)
    print(f"{args.model.name}: digests of {found} of its {listed} training scans")


if __name__ == "__main__":
    main()
