"""Multi-process training with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) each process trains on its own patches
(sampling is seeded by step *and* rank: a distributed sampler over cases and patches), gradients
are averaged by DDP (NCCL on CUDA, gloo on CPU), rank 0 alone preprocesses first, validates,
logs and writes checkpoints, and every decision to stop is agreed by all ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_context() -> DistContext:
    """The rank layout torchrun put in the environment (a single process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(
        rank=int(os.environ.get("RANK", "0")), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def init(ctx: DistContext, device: torch.device) -> torch.device:
    """Join the process group (once); returns this rank's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=60))
    return device


def wrap(model: nn.Module, ctx: DistContext, device: torch.device, sync_bn: bool = False) -> nn.Module:
    if not ctx.enabled:
        return model
    if sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.barrier()


def agree(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank if it is true on any rank (a stop request, a spent time budget)."""
    if not (ctx.enabled and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_float(value: float, ctx: DistContext, device: torch.device) -> float:
    """Rank 0's value on every rank (e.g. a learning rate that depends on rank 0's clock)."""
    if not (ctx.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
