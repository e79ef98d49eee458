"""Run by torchrun in test_ddp.py: a few DDP steps, then this rank's weight digest to a file."""

import hashlib
import os  # noqa: E402
import sys
from pathlib import Path

from napari_volseg import events as ev
from napari_volseg.config import load_preset
from napari_volseg.engine.trainer import Trainer
from napari_volseg.io.decathlon import load_task

task_dir, out, digests = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
out = out.with_name(f"rank{os.environ['RANK']}-{out.name}")  # each rank names its own file: only rank 0's may appear
preset = load_preset("fast-cpu").with_overrides(
    epochs=2, iterations_per_epoch=3, val_every=1, val_cases=2, patch_size=(16, 32, 32), minutes=None, threads=1
)
trainer = Trainer(load_task(task_dir), preset, out)
steps = 0
for event in trainer.run():
    if isinstance(event, ev.Failed):
        raise SystemExit(event.message)
    if isinstance(event, ev.Step):
        steps = event.step
h = hashlib.sha256()
for key, value in sorted(trainer.network.state_dict().items()):
    h.update(key.encode())
    h.update(value.detach().cpu().contiguous().numpy().tobytes())
digests.mkdir(parents=True, exist_ok=True)
(digests / f"rank{trainer.dist.rank}.txt").write_text(f"{steps} {h.hexdigest()}")
