"""Data-parallel training under ``torchrun``: process group set-up and gradient averaging.

``torchrun --nproc_per_node=N -m perception.cli pretrain ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
the rendezvous variables; ``init_distributed`` joins the group with ``gloo`` on CPU and ``nccl`` on CUDA. Gradients
are averaged with one all-reduce over a flattened bucket after each backward pass, which is the synchronisation
``DistributedDataParallel`` performs, written out so that parameters a step does not use (the global embedding
head, frozen parts) need no special handling. Every process starts from rank 0's weights (``broadcast_module``),
and rank 0's buffers before every step
(``broadcast_buffers``, DDP's ``broadcast_buffers=True``), so all ranks take identical steps; only rank 0 writes
files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_distributed(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (batch-norm running statistics) to every rank, as DDP does before each forward pass."""
    if not info.enabled:
        return
    for tensor in module.buffers():
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def average_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    """Mean of each trainable parameter's gradient over the ranks (missing gradients count as zero)."""
    if not info.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks of a scalar (for logging)."""
    if not info.enabled:
        return value
    out = value.detach().clone().float()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size
