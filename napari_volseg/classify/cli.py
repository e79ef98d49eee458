"""``volseg classify train | predict``: the 3D classifier from the command line (registered by ``napari_volseg.cli``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_volseg.config import DEVICES
from napari_volseg.errors import VolsegError

DEFAULT_PRESET = "seed-vgg13-3d"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``classify`` and its two subcommands to the ``volseg`` parser."""
    from napari_volseg.classify.config import CLASSIFY_PRESETS

    p = sub.add_parser("classify", help="the 3D digit classifier (VGG-13 with 3D convolutions): train, predict")
    p.set_defaults(run=run)
    verbs = p.add_subparsers(dest="classify_command", required=True, metavar="ACTION")

    t = verbs.add_parser("train", help="train on the 3D digits (or a 3D MNIST .h5 file); one safetensors checkpoint")
    t.add_argument(
        "--preset", default=DEFAULT_PRESET, help=f"{' | '.join(CLASSIFY_PRESETS)} (default {DEFAULT_PRESET})"
    )
    t.add_argument("--out", required=True, type=Path, help="checkpoint to write (.safetensors), after every epoch")
    t.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the preset's)")
    t.add_argument("--minutes", type=float, default=None, help="stop after this many minutes of training")
    t.add_argument("--limit", type=int, default=None, help="use only the first N train and N test digits")
    t.add_argument(
        "--data",
        type=Path,
        default=None,
        help="train on 3D MNIST's full_dataset_vectors.h5 instead of the 3D digits (--limit: first N volumes)",
    )
    t.add_argument("--device", choices=DEVICES, default=None, help="device (default auto)")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (default: all this process may use)")

    q = verbs.add_parser("predict", help="classify NIfTI or .npy volumes: class and probabilities, one line each")
    q.add_argument("--model", required=True, type=Path, help="classifier checkpoint (.safetensors)")
    q.add_argument(
        "files", nargs="+", type=Path, help="16x16x16 volumes, values 0-1 (.npy, or NIfTI / NRRD / MetaImage files)"
    )
    q.add_argument("--device", choices=DEVICES, default="auto", help="device (default auto)")


def run(args: argparse.Namespace) -> int:
    return _train(args) if args.classify_command == "train" else _predict(args)


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_volseg import events as ev
    from napari_volseg.classify import mnist3d
    from napari_volseg.classify.config import classify_preset
    from napari_volseg.classify.train import ClassifierTrainer

    preset = classify_preset(args.preset).with_overrides(
        epochs=args.epochs, minutes=args.minutes, limit=args.limit, device=args.device, threads=args.threads
    )
    source = mnist3d.source(args.data, preset.limit) if args.data else None
    trainer = ClassifierTrainer(preset, args.out, source)
    bar = None
    for event in trainer.run():
        if isinstance(event, ev.Started):
            print(
                f"training {preset.model} ({preset.name}) on {trainer.source.description}; device {event.device}, "
                f"batches of {event.batch_size}, Adam {preset.lr:g}",
                file=sys.stderr,
            )
            bar = tqdm(total=event.total_steps, desc="train", unit="step", disable=None, leave=False)
        elif isinstance(event, ev.Step):
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
        elif isinstance(event, ev.Validated):
            bar.write(f"epoch {event.epoch + 1}/{preset.epochs} step {event.step}: test accuracy {event.mean:.4f}")
        elif isinstance(event, ev.Failed):
            if bar:
                bar.close()
            raise VolsegError(event.message)
        elif isinstance(event, ev.Finished):
            bar.close()
            how = "stopped" if event.stopped else "finished"
            print(
                f"{how} at step {event.step} after {event.seconds / 60:.1f} min; test accuracy {event.accuracy:.4f}; "
                f"checkpoint {event.best_path}"
            )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from napari_volseg.classify.predict import predict_files

    for prediction in predict_files(args.model, args.files, device=args.device):
        p = prediction.probabilities
        listing = " ".join(f"{name}={value:.3f}" for name, value in p.items())
        print(f"{prediction.source}: {prediction.label} ({p[prediction.label]:.1%})  {listing}")
    return 0
