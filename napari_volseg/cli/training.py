"""Commands that train: train (every training setting a flag), finetune."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_volseg import config
from napari_volseg.cli.common import run_trainer
from napari_volseg.cli.settings import add_settings, given


def _train(args: argparse.Namespace) -> int:
    from napari_volseg.config import load_preset
    from napari_volseg.engine.trainer import Trainer
    from napari_volseg.io.decathlon import load_task
    from napari_volseg.zoo.warm import start_from

    settings = given(args, config.TrainConfig)
    if args.interactive:
        from napari_volseg.interactive.train import task_trainer

        trainer = task_trainer(
            load_task(args.data),
            args.out,
            minutes=settings.get("minutes") or 5.0,  # a promptable model's own default
            start_from=args.start_from,
            val_cases=settings.get("val_cases"),
        )
        return run_trainer(trainer, "a promptable model (clicks, boxes, scribbles)")
    preset = load_preset(args.preset).with_train(settings)
    task = load_task(args.data)
    warm, name = (None, "") if args.resume else start_from(args.start_from, task, preset)
    if name:
        print(f"starting from {name} (--start-from scratch to train from scratch)", file=sys.stderr)
    trainer = Trainer(task, preset, args.out, resume=args.resume, warm_from=warm, warm_name=name)
    return run_trainer(trainer, preset.name)


def _finetune(args: argparse.Namespace) -> int:
    from napari_volseg.annotate.finetune import finetuner
    from napari_volseg.config import FinetuneConfig
    from napari_volseg.interactive.train import is_promptable
    from napari_volseg.io.decathlon import load_task

    settings = FinetuneConfig(**given(args, FinetuneConfig))
    if is_promptable(args.model):
        from napari_volseg.interactive.train import finetuner as prompt_finetuner

        trainer = prompt_finetuner(args.model, load_task(args.data), args.out, minutes=settings.minutes)
        return run_trainer(trainer, f"fine-tuning {args.model.name}")
    trainer = finetuner(args.model, load_task(args.data), args.out, settings, device=args.device)
    return run_trainer(trainer, f"fine-tuning {args.model.name}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a 3D U-Net on an MSD task folder")
    p.add_argument("--data", required=True, type=Path, help="MSD task folder (dataset.json, imagesTr/, labelsTr/)")
    p.add_argument(
        "--preset", default=config.DEFAULT_PRESET, help="training preset name or YAML file (see `volseg presets`)"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="checkpoint to write (.safetensors); the resumable "
        "last checkpoint goes beside it as NAME.last.safetensors",
    )
    p.add_argument("--resume", action="store_true", help="continue from NAME.last.safetensors")
    p.add_argument(
        "--start-from",
        default="auto",
        metavar="MODEL",
        help="warm start: a zoo model name or checkpoint to start from, 'scratch', or 'auto' (default: the closest "
        "model of the task's modality and channels, else scratch; a head for other classes starts fresh; with "
        "--interactive: volseg-interactive)",
    )
    p.add_argument(
        "--interactive",
        action="store_true",
        help="train a promptable model (clicks, boxes, scribbles; see `volseg interact`) on every labelled structure "
        "of the task, for --minutes (default 5)",
    )
    add_settings(p, config.TrainConfig, "training settings (unset: the preset's)")
    p.set_defaults(run=_train)

    p = sub.add_parser("finetune", help="continue training a checkpoint on a task's labelled cases")
    p.add_argument(
        "--model", required=True, type=Path, help="checkpoint (.safetensors) or model name (see `volseg models`)"
    )
    p.add_argument("--data", required=True, type=Path, help="MSD task folder")
    p.add_argument("--out", required=True, type=Path, help="new checkpoint to write (.safetensors)")
    p.add_argument("--device", choices=config.DEVICES, default=None, help="device (default: the model's preset's)")
    add_settings(p, config.FinetuneConfig, "fine-tuning settings")
    p.set_defaults(run=_finetune)
