"""The thin distribution layer: torch.distributed (DDP) under ``torchrun``, a no-op in a single process.

    torchrun --nproc_per_node 4 -m dfkd distill ...                       # one node, 4 processes
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-endpoint HOST:PORT -m dfkd distill ...

Semantics (see the README's "Several processes" section):
- ``batch_size`` in the config is the *global* batch: each rank synthesises ``batch_size / world_size``
  samples per step from its own random stream (seeded by ``seed`` and its rank), and DDP averages the
  gradients, so learning rates mean the same thing at any world size.
- The student, generator and VAE are identical on every rank (same seed at construction, DDP broadcasts
  rank 0's weights and, every forward, its buffers). MB-DFKD's memory bank is per rank: each rank stores
  and replays its own samples (the bank is a buffer no gradient touches, so sharding it costs nothing and
  the global bank is world_size times larger).
- BatchNorm statistics are per rank by default; ``sync_bn: true`` converts the student's and generator's
  BatchNorm layers to SyncBatchNorm (statistics over the global batch).
- Only rank 0 writes files, logs and the progress line and evaluates on real data; loss sums are
  averaged over ranks at log boundaries, and every decision (rollback, stop on a signal) is taken on
  reduced values so all ranks take it together. Collectives time out after ``dist_timeout_s`` seconds,
  so a dead rank makes the others fail with an error instead of hanging.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from .device import resolve_device
from .errors import DfkdError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process initialised the group (and so destroys it)
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))  # this process's device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives; each is a no-op for a single process ------------------------------------------------
    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Average a dict of scalar tensors over ranks (every rank passes the same keys)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        flat = torch.stack([values[k].detach().float().reshape(()).to(self.device) for k in keys])
        dist.all_reduce(flat)
        flat /= self.world_size
        return {k: flat[i] for i, k in enumerate(keys)}

    def average(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor of any shape averaged over ranks (the same shape on every rank)."""
        if not self.enabled:
            return t
        t = t.detach().float().clone()
        dist.all_reduce(t)
        return t / self.world_size

    def any(self, flag: bool) -> bool:
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, on every rank (list indexed by rank)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        """Destroy the group this process created, after a barrier and once unreferenced DDP wrappers are gone."""
        if self.owns_group and dist.is_initialized():
            dist.barrier()
            gc.collect()
            dist.destroy_process_group()


def from_environment(timeout_s: float = 300.0, device: str | torch.device | None = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (WORLD_SIZE > 1), else single.
    ``device`` (``dfkd.device.resolve_device``): a GPU rank computes on ``cuda:LOCAL_RANK`` and joins with NCCL;
    CPU ranks join with gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # NCCL and CUDA's default stream follow the current device
    if world <= 1:
        return DistContext(device=dev)
    rank = int(os.environ.get("RANK", "0"))
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                **({"device_id": dev} if dev.type == "cuda" else {}))
    except Exception as exc:  # rendezvous failures are user-fixable (address, port, world size)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DfkdError(f"could not join the torchrun process group (rank {rank} of {world}): {first[:200]}") from None
    return DistContext(rank, world, local_rank, owns_group=True, device=dev)


def wrap_ddp(module: torch.nn.Module, ctx: DistContext, sync_bn: bool) -> torch.nn.Module:
    """``module`` in DistributedDataParallel (optionally with SyncBatchNorm); itself when single-process. The
    module must already be on ``ctx.device``."""
    if not ctx.enabled:
        return module
    if sync_bn:
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if ctx.device.type == "cuda":
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=[ctx.device.index],
                                                         output_device=ctx.device.index)
    return torch.nn.parallel.DistributedDataParallel(module)


def per_rank_config(cfg: Any, ctx: DistContext) -> Any:
    """The config (a ``DistillConfig``) one rank runs with: ``batch_size`` is the global batch, split evenly."""
    if not ctx.enabled:
        return cfg
    if cfg.batch_size % ctx.world_size:
        raise DfkdError(f"batch_size {cfg.batch_size} (the global batch) is not divisible by the {ctx.world_size} "
                        "processes; choose a multiple")
    if cfg.sync_bn and ctx.device.type != "cuda":
        raise DfkdError("sync_bn needs GPUs (PyTorch's SyncBatchNorm has no CPU implementation); set sync_bn=false")
    return dataclasses.replace(cfg, batch_size=cfg.batch_size // ctx.world_size)


def ranks_agree(modules: dict[str, torch.nn.Module], ctx: DistContext) -> bool:
    """Whether every rank ends with the same parameters in ``modules`` (a float64 checksum per module)."""
    if not ctx.enabled:
        return True
    sums = {k: sum(p.detach().double().sum().item() for p in mod.parameters()) for k, mod in modules.items()}
    return all(other == sums for other in ctx.gather_objects(sums))


@contextlib.contextmanager
def collective_errors(ctx: DistContext, timeout_s: float) -> Iterator[None]:
    """Under torchrun, a failed collective (a rank died, or timed out) becomes one clear error."""
    try:
        yield
    except dist.DistError as exc:
        if not ctx.enabled:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DfkdError(f"rank {ctx.rank}: lost contact with the other processes ({first[:160]}); a rank died or "
                        f"a collective waited more than dist_timeout_s={timeout_s:g} s; resume from the "
                        "last checkpoint with the same torchrun command and --resume") from None


__all__ = ["DistContext", "collective_errors", "from_environment", "per_rank_config", "ranks_agree", "wrap_ddp"]
