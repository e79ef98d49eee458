"""Commands for models: models, pull, export, import."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_volseg.cli.common import follow_download
from napari_volseg.config import EXPORT_FORMATS


def _models(args: argparse.Namespace) -> int:
    from napari_volseg.models import MODEL_PRESETS, build_model, count_parameters
    from napari_volseg.models.registry import CLASSIFIER_PRESETS
    from napari_volseg.zoo.registry import list_models, promptable_models

    print("architectures (volseg train --preset ..., model:; volseg classify)")
    for name, (arch, description) in {**MODEL_PRESETS, **CLASSIFIER_PRESETS}.items():
        print(f"  {name:<12} {count_parameters(build_model(arch)):>12,} parameters  {description}")
    print("models (volseg predict --model NAME)")
    for entry in list_models(args.index, runs=False):
        where = entry.path if entry.path else f"volseg pull {entry.name}"
        print(f"  {entry.label:<32} {entry.about}  [{where}]")
    print("promptable models (volseg interact --model NAME; the Prompts tab), and random-walker (no model)")
    for entry in promptable_models(runs=False):
        print(f"  {entry.label:<32} {entry.about}  [{entry.path}]")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from napari_volseg.zoo.pull import pull

    path = follow_download(pull(args.name, args.index), args.name)
    print(f"{args.name} is installed: {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from napari_volseg.zoo.export import export

    for path in export(args.model, args.format, args.out):
        print(f"wrote {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from napari_volseg.zoo.bundle_import import import_bundle

    path = import_bundle(args.monai_bundle, args.out)
    name = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name
    print(f"imported {args.monai_bundle} as {path}; predict with `volseg predict --model {name} ...`")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list architectures (with parameter counts) and pretrained / installed models")
    p.add_argument("--index", default=None, help="model index (JSON file or URL) listing models to pull")
    p.set_defaults(run=_models)

    p = sub.add_parser("pull", help="download a model named in the model index (SHA-256 checked, resumable)")
    p.add_argument("name", help="model name, as `volseg models` lists it")
    p.add_argument("--index", default=None, help="model index (JSON file or URL; default: the one shipped)")
    p.set_defaults(run=_pull)

    p = sub.add_parser("export", help="export a model as ONNX, TorchScript, a bioimage.io package or a MONAI bundle")
    p.add_argument("--model", required=True, help="model name or checkpoint (.safetensors)")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument(
        "--out", required=True, type=Path, help="file (onnx, torchscript; the plan goes beside it) or folder"
    )
    p.set_defaults(run=_export)

    p = sub.add_parser("import", help="import a MONAI bundle (UNet, BasicUNet, SegResNet) as a napari-volseg model")
    p.add_argument("--monai-bundle", required=True, type=Path, help="bundle folder (configs/, models/model.pt)")
    p.add_argument("--out", type=Path, default=None, help="model file to write (default: the user's models folder)")
    p.set_defaults(run=_import)
