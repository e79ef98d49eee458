"""Import a MONAI bundle (model-zoo layout) as a napari-volseg model that keeps the bundle's own preprocessing.

A bundle folder holds ``configs/inference.json``, ``configs/metadata.json`` and ``models/model.pt``.
Its configs are read as plain JSON, never evaluated: MONAI's ``ConfigParser`` would run the ``$``
expressions and instantiate any ``_target_`` a file names. Only a known set is accepted:

- network: MONAI ``UNet``, ``BasicUNet`` or ``SegResNet`` with literal arguments (3D);
- preprocessing: ``Orientationd``, ``Spacingd``, ``ScaleIntensityRanged``, ``ScaleIntensityd``,
  ``NormalizeIntensityd``, ``CropForegroundd`` (default foreground), with loading/typing steps skipped;
- inferer: ``SlidingWindowInferer``; postprocessing: softmax, invert the preprocessing, argmax (as
  the model zoo's segmentation bundles do).

Weights load with ``torch.load(weights_only=True)``: tensors only, no pickled objects. The result,
a :class:`BundleModel`, is saved as one safetensors file (format ``napari-volseg/monai-bundle/1``)
that the registry, ``volseg predict`` and the Predict widget treat like any other model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.errors import VolsegError
from napari_volseg.zoo.card import CARD_KEY, ModelCard

BUNDLE_FORMAT = "napari-volseg/monai-bundle/1"
NETWORKS = ("UNet", "BasicUNet", "SegResNet")
TRANSFORMS = {
    "Orientationd": ("axcodes",),
    "Spacingd": ("pixdim", "mode", "padding_mode", "align_corners", "diagonal"),
    "ScaleIntensityRanged": ("a_min", "a_max", "b_min", "b_max", "clip"),
    "ScaleIntensityd": ("minv", "maxv"),
    "NormalizeIntensityd": ("nonzero", "channel_wise", "subtrahend", "divisor"),
    "CropForegroundd": ("margin", "allow_smaller", "k_divisible"),
}
SKIPPED = ("LoadImaged", "EnsureChannelFirstd", "EnsureTyped", "ToTensord", "AddChanneld", "CastToTyped")
INFERER_KEYS = ("roi_size", "sw_batch_size", "overlap", "mode")


class BundleError(VolsegError):
    """A MONAI bundle cannot be imported (missing files, unsupported network or transform, bad weights)."""


@dataclass
class BundleModel:
    """A MONAI network with the bundle's preprocessing and sliding-window settings, as plain data."""

    name: str
    network: dict
    """``{"name": "UNet", "kwargs": {...}}``"""
    transforms: list[dict]
    """``[{"name": "Spacingd", "args": {...}}, ...]`` in order, applied to the image only."""
    inferer: dict
    labels: dict[int, str]
    state: dict[str, torch.Tensor] = field(repr=False)
    card: ModelCard | None = None

    def build_network(self) -> torch.nn.Module:
        from monai.networks import nets

        net = getattr(nets, self.network["name"])(**self.network["kwargs"])
        try:
            net.load_state_dict(self.state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise BundleError(f"{self.name}: weights do not fit its {self.network['name']} ({first})") from exc
        return net.eval()


def is_bundle(path: str | os.PathLike) -> bool:
    """True for a folder laid out as a MONAI bundle (``configs/inference.json``)."""
    return (Path(path) / "configs" / "inference.json").is_file()


def _plain(value, where: str):
    """``value`` if it holds no config expression or reference (``$...``, ``@...``, ``%...``)."""
    if isinstance(value, str) and value[:1] in ("$", "@", "%"):
        raise BundleError(f"{where} is an expression ({value!r}); only literal values can be imported")
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    return value


def _target(node: dict) -> str:
    return str(node.get("_target_", "")).rsplit(".", 1)[-1]


def _network(config: dict) -> dict:
    node = config.get("network_def")
    if not isinstance(node, dict) or _target(node) not in NETWORKS:
        found = _target(node) if isinstance(node, dict) else node
        raise BundleError(f"network_def is {found!r}; importable networks: {', '.join(NETWORKS)}")
    kwargs = {k: _plain(v, f"network_def.{k}") for k, v in node.items() if k != "_target_"}
    if int(kwargs.get("spatial_dims", 3)) != 3:
        raise BundleError("only 3D networks (spatial_dims 3) can be imported")
    return {"name": _target(node), "kwargs": kwargs}


def _transforms(config: dict, image_key: str = "image") -> list[dict]:
    node = config.get("preprocessing")
    items = node.get("transforms") if isinstance(node, dict) else node
    if not isinstance(items, list):
        raise BundleError("inference.json has no preprocessing transform list")
    out = []
    for item in items:
        name = _target(item) if isinstance(item, dict) else str(item)
        keys = item.get("keys", image_key) if isinstance(item, dict) else image_key
        if name in SKIPPED or image_key not in ([keys] if isinstance(keys, str) else keys):
            continue
        if name not in TRANSFORMS:
            raise BundleError(f"preprocessing step {name!r} is not supported; importable: {', '.join(TRANSFORMS)}")
        unknown = set(item) - {"_target_", "keys", "source_key", *TRANSFORMS[name]}
        if unknown or item.get("source_key", image_key) != image_key:
            raise BundleError(f"{name}: unsupported argument(s) {', '.join(sorted(unknown or {'source_key'}))}")
        args = {k: _plain(item[k], f"{name}.{k}") for k in TRANSFORMS[name] if k in item}
        out.append({"name": name, "args": args})
    return out


def _inferer(config: dict) -> dict:
    node = config.get("inferer") or {}
    if _target(node) != "SlidingWindowInferer":
        raise BundleError(f"inferer {_target(node)!r} is not supported; importable: SlidingWindowInferer")
    inferer = {"sw_batch_size": 1, "overlap": 0.25, "mode": "constant"}
    inferer.update({k: _plain(node[k], f"inferer.{k}") for k in INFERER_KEYS if k in node})
    if "roi_size" not in inferer:
        raise BundleError("inferer has no roi_size")
    post = config.get("postprocessing") or {}
    for item in post.get("transforms", []) if isinstance(post, dict) else []:
        if _target(item) == "Activationsd" and item.get("sigmoid"):
            raise BundleError("sigmoid (multi-label) outputs are not supported; importable bundles end in softmax")
    return inferer


def _labels(meta: dict, classes: int) -> dict[int, str]:
    outputs = (meta.get("network_data_format") or {}).get("outputs") or {}
    channel_def = next(iter(outputs.values()), {}).get("channel_def") if outputs else None
    if isinstance(channel_def, dict) and channel_def:
        return {int(k): str(v) for k, v in channel_def.items()}
    return {0: "background", **{k: f"class {k}" for k in range(1, classes)}}


def _state(weights: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickled objects: say so in one line
        raise BundleError(f"{weights} is not a plain state dict of tensors ({type(exc).__name__})") from exc
    for key in ("model", "state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise BundleError(f"{weights} does not hold a state dict of tensors")
    return {k: v.contiguous() for k, v in loaded.items()}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path} ({exc})") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a JSON object")
    return data


def read_bundle(folder: str | os.PathLike) -> BundleModel:
    """Read a MONAI bundle folder into a :class:`BundleModel` (weights checked against the network)."""
    folder = Path(folder)
    if not is_bundle(folder):
        raise BundleError(f"{folder} is not a MONAI bundle (no configs/inference.json)")
    config = _read_json(folder / "configs" / "inference.json")
    meta_path = folder / "configs" / "metadata.json"
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    weights = folder / "models" / "model.pt"
    if not weights.is_file():
        raise BundleError(f"{folder} has no models/model.pt")
    network = _network(config)
    classes = int(network["kwargs"].get("out_channels", 2))
    transforms = _transforms(config)
    spacing = next((t["args"].get("pixdim") for t in transforms if t["name"] == "Spacingd"), None)
    card = ModelCard(
        name=folder.name,
        description=str(meta.get("description", "")),
        task=str(meta.get("task", folder.name)),
        classes=_labels(meta, classes),
        modality=str(
            ((meta.get("network_data_format") or {}).get("inputs") or {}).get("image", {}).get("modality", "")
        ),
        expected_spacing_mm=tuple(float(s) for s in reversed(spacing)) if spacing else None,
        training_data=str(meta.get("data_source", "")),
        licence=str(meta.get("license", meta.get("copyright", ""))),
        attribution=str(meta.get("authors", "")),
        command=f"imported from the MONAI bundle {folder.name} (version {meta.get('version', '?')})",
    )
    model = BundleModel(
        name=folder.name,
        network=network,
        transforms=transforms,
        inferer=_inferer(config),
        labels=card.classes,
        state=_state(weights),
        card=card,
    )
    model.build_network()  # fail now, with one line, if the weights do not fit
    return model


def save_bundle_model(model: BundleModel, path: str | os.PathLike) -> Path:
    """Write an imported bundle as one safetensors file (atomically)."""
    meta = {
        "format": BUNDLE_FORMAT,
        "name": model.name,
        "network": json.dumps(model.network),
        "transforms": json.dumps(model.transforms),
        "inferer": json.dumps(model.inferer),
        "labels": json.dumps({str(k): v for k, v in model.labels.items()}),
    }
    if model.card is not None:
        meta[CARD_KEY] = json.dumps(model.card.to_dict())
    return ckpt.write_atomic(path, {f"model.{k}": v for k, v in model.state.items()}, meta)


def load_bundle_model(path: str | os.PathLike) -> BundleModel:
    """Read a file written by :func:`save_bundle_model`; one-line error for anything else."""
    from safetensors import safe_open

    meta = ckpt.read_meta(path)
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{Path(path).name} is not an imported MONAI bundle")
    with safe_open(str(path), framework="pt") as f:
        state = {k[len("model.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    card = json.loads(meta[CARD_KEY]) if CARD_KEY in meta else None
    return BundleModel(
        name=meta.get("name", Path(path).stem),
        network=json.loads(meta["network"]),
        transforms=json.loads(meta["transforms"]),
        inferer=json.loads(meta["inferer"]),
        labels={int(k): v for k, v in json.loads(meta["labels"]).items()},
        state=state,
        card=ModelCard.from_dict(card) if card else None,
    )


def import_bundle(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Import a bundle folder; ``out`` defaults to the user's models folder, so its name works as ``--model``."""
    from napari_volseg import paths

    model = read_bundle(folder)
    return save_bundle_model(model, out or paths.models_dir() / f"{model.name}.safetensors")
