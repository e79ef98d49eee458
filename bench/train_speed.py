"""Training speed: the project's trainer against a plain fp32 PyTorch loop of the same network and patch.

Both run the same model preset, patch size, batch size and Dice+CE loss; the trainer adds patch
sampling, augmentation and bookkeeping, and trains in the preset's memory format (fast-cpu:
``channels_last_3d``, which the plain loop also runs in, as a second row). Also reports the FLOP rate a train step reaches as a
fraction of the measured matrix-multiply rate. Prints a table, ends with one JSON line.

    python bench/train_speed.py [--model cpu-lean] [--patch 64 64 64] [--batch 2] [--steps 12] [--device auto]
                                [--loader-threads N] [--channels-last] [--compile] [--no-amp]

On a GPU the trainer runs its GPU path (AMP, pinned memory, prefetching threads; the flags above
switch parts of it); the plain loop stays fp32, so the ratio is what that path buys.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_volseg import events as ev
from napari_volseg.config import DEFAULT_PRESET, load_preset
from napari_volseg.engine.device import resolve_device, set_threads
from napari_volseg.engine.trainer import Trainer
from napari_volseg.io import decathlon, synthetic
from napari_volseg.losses import make_loss
from napari_volseg.models import build_model, model_config


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(
    name: str, patch, batch: int, steps: int, device: torch.device, channels_last: bool = False
) -> tuple[float, float]:
    """Seconds per step of model+loss+Adam on random tensors, and FLOPs of one step."""
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = build_model(model_config(name)).to(device, memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = make_loss("dicece")
    x = torch.randn(batch, 1, *patch, device=device).to(memory_format=memory_format)
    y = torch.randint(0, 2, (batch, 1, *patch), device=device)
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(x), y).backward()
    flops = counter.get_total_flops()
    times = []
    for i in range(steps + 2):
        sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return sum(times) / len(times), flops


def trainer_loop(name: str, patch, batch: int, steps: int, device: str, folder: Path, **gpu) -> float:
    """Seconds per step of the project's Trainer (sampling, augmentation, events) on a synthetic task."""
    spec = synthetic.PhantomSpec(
        shape=(max(patch[0], 32), max(patch[1], 96), max(patch[2], 96)), spacing=(2.0, 1.5, 1.5)
    )
    task = decathlon.load_task(synthetic.write_task(folder / "task", cases=4, kind="ct", spec=spec))
    preset = load_preset(DEFAULT_PRESET).with_overrides(
        epochs=1,
        iterations_per_epoch=steps + 2,
        patch_size=tuple(patch),
        batch_size=batch,
        val_every=1000,
        device=device,
        minutes=None,
        val_cases=1,
        **gpu,
    )
    import dataclasses

    preset = dataclasses.replace(preset, model=name, plan=dataclasses.replace(preset.plan, max_voxels=None))
    stamps = []
    for event in Trainer(task, preset, folder / "m.safetensors", cache_root=folder / "cache").run():
        if isinstance(event, ev.Step):
            stamps.append(event.seconds)
        if isinstance(event, ev.Failed):
            raise SystemExit(event.message)
    deltas = [b - a for a, b in zip(stamps[2:-1], stamps[3:], strict=False)]
    return sum(deltas) / len(deltas)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cpu-lean")
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--loader-threads", type=int, default=None)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-amp", action="store_true")
    args = parser.parse_args()
    gpu = {
        "loader_threads": args.loader_threads,
        "channels_last": args.channels_last or None,
        "compile": args.compile or None,
        "amp": False if args.no_amp else None,
    }
    threads = set_threads(args.threads)
    device = resolve_device(args.device)
    voxels = args.batch * args.patch[0] * args.patch[1] * args.patch[2]
    mm = matmul_gflops(device)
    plain_s, flops = plain_loop(args.model, args.patch, args.batch, args.steps, device)
    plain_cl_s, _ = plain_loop(args.model, args.patch, args.batch, args.steps, device, channels_last=True)
    with tempfile.TemporaryDirectory() as tmp:
        trainer_s = trainer_loop(args.model, args.patch, args.batch, args.steps, str(device.type), Path(tmp), **gpu)
    rows = [
        ("plain fp32 loop", plain_s),
        ("plain, channels_last_3d", plain_cl_s),
        ("napari-volseg Trainer", trainer_s),
    ]
    print(
        f"{args.model}, patch {tuple(args.patch)}, batch {args.batch}, {device}, {threads} thread(s); "
        f"matmul {mm:.0f} GFLOP/s; {flops / 1e9:.1f} GFLOP per step"
    )
    print(f"{'loop':<24}{'s/step':>10}{'Mvoxel/s':>12}{'GFLOP/s':>10}{'of matmul':>11}")
    for name, s in rows:
        print(f"{name:<24}{s:>10.3f}{voxels / s / 1e6:>12.3f}{flops / s / 1e9:>10.1f}{flops / s / 1e9 / mm:>11.1%}")
    print(
        json.dumps(
            {
                "bench": "train_speed",
                "model": args.model,
                "patch": args.patch,
                "batch": args.batch,
                "device": str(device),
                "threads": threads,
                "matmul_gflops": round(mm, 1),
                "gflop_per_step": round(flops / 1e9, 2),
                "plain_s_per_step": round(plain_s, 4),
                "plain_channels_last_s_per_step": round(plain_cl_s, 4),
                "trainer_s_per_step": round(trainer_s, 4),
                "trainer_options": {k: v for k, v in gpu.items() if v is not None},
                "trainer_vs_plain_voxel_rate": round(plain_s / trainer_s, 3),
                "trainer_mvoxel_per_s": round(voxels / trainer_s / 1e6, 4),
                "trainer_fraction_of_matmul": round(flops / trainer_s / 1e9 / mm, 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
