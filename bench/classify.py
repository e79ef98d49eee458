"""3D classifier: test accuracy and time on this machine for the seed's recipe and the fast CPU recipe.

The seed's recipe (``seed-vgg13-3d``: vgg13-3d, 60 epochs, Adam 1e-5, batches of 32) runs for as many epochs as fit
in ``--seed-minutes`` (the last epoch may be cut short; it is still scored); the fast recipe (``fast-vgg13-3d``) runs
its epochs, capped by ``--fast-minutes``. Both on the 3D digits (300 test digits x 2 volumes); the test accuracy is
measured after every epoch (the curve). Prints a table and the curves, ends with one JSON line.

    python bench/classify.py [--seed-minutes 9] [--fast-minutes 5] [--threads N] [--limit N]

On 2 idle cores the defaults take about 13 minutes. ``--limit 20 --seed-minutes 0.2 --fast-epochs 1`` checks the
script in about a minute.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from napari_volseg import events as ev
from napari_volseg.classify.config import classify_preset
from napari_volseg.classify.train import ClassifierTrainer
from napari_volseg.engine.device import set_threads
from napari_volseg.models.registry import build_model, classifier_config, count_parameters


def run(name: str, minutes: float, epochs: int | None, limit: int | None, threads: int, folder: Path) -> dict:
    """Train one recipe; its per-epoch curve, timing and final test accuracy."""
    preset = classify_preset(name).with_overrides(minutes=minutes, epochs=epochs, limit=limit, threads=threads)
    trainer = ClassifierTrainer(preset, folder / f"{name}.safetensors")
    started = finished = None
    for event in trainer.run():
        if isinstance(event, ev.Started):
            started = event
        elif isinstance(event, ev.Validated):
            print(
                f"  {name} epoch {event.epoch + 1}: test accuracy {event.mean:.4f} ({event.seconds:.0f} s)", flush=True
            )
        elif isinstance(event, ev.Failed):
            raise SystemExit(event.message)
        elif isinstance(event, ev.Finished):
            finished = event
    curve = [
        {
            "epoch": h["epoch"] + 1,
            "step": h["step"],
            "seconds": round(h["seconds"], 1),
            "test_accuracy": round(h["test_accuracy"], 4),
        }
        for h in finished.history
    ]
    epochs_done = finished.step / (started.total_steps / preset.epochs)
    return {
        "preset": name,
        "model": preset.model,
        "parameters": count_parameters(build_model(classifier_config(preset.model))),
        "lr": preset.lr,
        "batch_size": preset.batch_size,
        "epochs_planned": preset.epochs,
        "epochs_done": round(epochs_done, 2),
        "train_volumes_per_epoch": len(started.train_cases),
        "test_volumes": len(started.val_cases),
        "seconds": round(finished.seconds, 1),
        "seconds_per_epoch": round(finished.seconds / max(epochs_done, 1e-9), 1),
        "test_accuracy": round(finished.accuracy, 4),
        "curve": curve,
        "data": trainer.source.description,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-minutes", type=float, default=9.0, help="training budget of the seed's recipe")
    parser.add_argument("--fast-minutes", type=float, default=5.0, help="cap on the fast recipe's training time")
    parser.add_argument("--seed-epochs", type=int, default=None, help="epochs of the seed's recipe (default 60)")
    parser.add_argument("--fast-epochs", type=int, default=None, help="epochs of the fast recipe (default 15)")
    parser.add_argument("--limit", type=int, default=None, help="first N train and test digits only (a quick check)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            run("seed-vgg13-3d", args.seed_minutes, args.seed_epochs, args.limit, threads, Path(tmp)),
            run("fast-vgg13-3d", args.fast_minutes, args.fast_epochs, args.limit, threads, Path(tmp)),
        ]
    print(
        f"\n{rows[0]['data']}\ntorch {torch.__version__}, {threads} thread(s), {platform.processor() or platform.machine()}"
    )
    print(
        f"{'preset':<16}{'model':<17}{'params':>12}{'lr':>8}{'epochs':>12}{'s/epoch':>9}{'minutes':>9}{'test acc':>10}"
    )
    for r in rows:
        epochs = f"{r['epochs_done']:g}/{r['epochs_planned']}"
        print(
            f"{r['preset']:<16}{r['model']:<17}{r['parameters']:>12,}{r['lr']:>8g}{epochs:>12}"
            f"{r['seconds_per_epoch']:>9.1f}{r['seconds'] / 60:>9.1f}{r['test_accuracy']:>10.1%}"
        )
    for r in rows:
        print(f"{r['preset']} curve: " + ", ".join(f"{c['epoch']}: {c['test_accuracy']:.1%}" for c in r["curve"]))
    print("the seed report: 72.6% (3D MNIST, 60 epochs)")
    print(json.dumps({"bench": "classify", "threads": threads, "torch": torch.__version__, "runs": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
