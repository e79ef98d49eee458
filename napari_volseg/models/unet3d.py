"""A configurable 3D U-Net covering the seed report's Networks 1 and 2 and leaner CPU variants.

Input ``(N, C_in, Z, Y, X)``, output logits ``(N, classes, Z, Y, X)``; every spatial size must be a
multiple of ``2 ** len(widths)`` (the sliding window and patch sampler guarantee it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_volseg.models.norm import instance_norm_cpu


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`UNet3D`; stored in every checkpoint.

    ``widths``: channels of the encoder levels (each followed by 2x2x2 max-pooling); ``bottleneck``:
    channels at the lowest level. ``norm`` is applied where the ``*_norm`` flags say (the seed's
    Network 1 normalises the encoder only). ``order`` is ``"conv-act-norm"`` (the seed's) or
    ``"conv-norm-act"``. ``final_kernel`` is 3 in the seed, 1 in most modern U-Nets.
    ``deep_supervision``: decoder levels below the top that get a 1x1x1 head of their own; in training
    mode the net then returns ``[full, half, quarter, ...]`` resolution logits (nnU-Net's deep
    supervision), in eval mode the full-resolution logits only.
    """

    in_channels: int = 1
    num_classes: int = 2
    widths: tuple[int, ...] = (32, 64, 128, 256)
    bottleneck: int = 512
    norm: str = "batch"
    encoder_norm: bool = True
    bottleneck_norm: bool = False
    decoder_norm: bool = False
    order: str = "conv-act-norm"
    act: str = "relu"
    final_kernel: int = 3
    deep_supervision: int = 0

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not 0 <= self.deep_supervision < len(self.widths):
            raise ValueError(
                f"deep_supervision {self.deep_supervision} is too deep: at most {len(self.widths) - 1} levels"
            )
        if self.norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm must be batch, instance or none, got {self.norm!r}")
        if self.order not in ("conv-act-norm", "conv-norm-act"):
            raise ValueError(f"order must be conv-act-norm or conv-norm-act, got {self.order!r}")
        if self.act not in ("relu", "leakyrelu"):
            raise ValueError(f"act must be relu or leakyrelu, got {self.act!r}")

    @property
    def divisor(self) -> int:
        """Spatial sizes must be multiples of this."""
        return 2 ** len(self.widths)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        if not self.deep_supervision:  # a net without it reads as before in earlier versions of the package
            del d["deep_supervision"]
        return d


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return InstanceNorm(channels)
    return nn.Identity()


class InstanceNorm(nn.GroupNorm):
    """Instance normalisation with a learnt scale and shift per channel (``InstanceNorm3d(affine=True)``: the same
    statistics, eps and parameter names, so checkpoints load either way). On the CPU it runs as a GroupNorm with a
    group per channel: ``instance_norm`` views a ``(N, C, ...)`` tensor as one ``(1, N*C, ...)`` batch, which a
    channels-last tensor can only give through copies there and back (a fifth of a cpu-lean step), while
    ``group_norm`` has a channels-last CPU kernel (the step 8 % faster), whose slow backward ``models.norm``
    replaces. Elsewhere it stays ``instance_norm`` (on CUDA under autocast ``group_norm`` would run in fp32; not
    measured there)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels, channels, eps=eps, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            return instance_norm_cpu(x, self.weight, self.bias, self.eps, self.num_groups)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _act(kind: str) -> nn.Module:
    return nn.ReLU(inplace=True) if kind == "relu" else nn.LeakyReLU(0.01, inplace=True)


def double_conv(cin: int, cout: int, cfg: ModelConfig, normalise: bool) -> nn.Sequential:
    """Two 3x3x3 convolutions, each with activation and (if ``normalise``) normalisation."""
    layers: list[nn.Module] = []
    for i in range(2):
        conv = nn.Conv3d(cin if i == 0 else cout, cout, kernel_size=3, padding=1)
        norm = _norm(cfg.norm if normalise else "none", cout)
        act = _act(cfg.act)
        layers += [conv, act, norm] if cfg.order == "conv-act-norm" else [conv, norm, act]
    return nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])


class UNet3D(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        cfg = config
        self.down = nn.ModuleList()
        cin = cfg.in_channels
        for w in cfg.widths:
            self.down.append(double_conv(cin, w, cfg, cfg.encoder_norm))
            cin = w
        self.pool = nn.MaxPool3d(2)
        self.bottom = double_conv(cin, cfg.bottleneck, cfg, cfg.bottleneck_norm)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        cin = cfg.bottleneck
        for w in reversed(cfg.widths):
            self.up.append(nn.ConvTranspose3d(cin, w, kernel_size=2, stride=2))
            self.dec.append(double_conv(2 * w, w, cfg, cfg.decoder_norm))
            cin = w
        self.head = nn.Conv3d(cin, cfg.num_classes, kernel_size=cfg.final_kernel, padding=cfg.final_kernel // 2)
        # heads of the deep-supervised levels, half resolution first (decoder widths cfg.widths[1], [2], ...)
        self.aux_heads = nn.ModuleList(
            nn.Conv3d(w, cfg.num_classes, kernel_size=1) for w in cfg.widths[1 : 1 + cfg.deep_supervision]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        supervised = self.training and len(self.aux_heads) > 0
        levels = []  # decoder outputs, kept only when deep supervision scores them
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
            if supervised:
                levels.append(x)
        out = self.head(x)
        if not supervised:
            return out
        lower = levels[-2::-1]  # half resolution first
        return [out] + [head(level) for head, level in zip(self.aux_heads, lower, strict=False)]
