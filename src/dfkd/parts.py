"""A method's parts, declared once: what it trains or keeps, and how the generic code must treat each.

Every method (and every synthesizer or objective term it uses) lists its parts as ``Part`` rows. The loop,
checkpointing, rollback, the rank-consistency check, ``replay_memory_bytes`` and the learning-rate setting
read this table; none of them names a part of a particular method.

    Part("vae", vae, optimizer=opt_vae, lr_key="lr_vae", replay=True, log_prefix="vae_")

``PartContext`` is what a part needs to build itself from the method it belongs to: the frozen teacher,
the student, the data set's description, the method's config, and the method's precision and DDP wrapping.
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from .data.info import DatasetInfo
from .precision import Precision


@dataclass
class Part:
    name: str  # key in checkpoints and in the lr scales; the owner of a rollback
    module: nn.Module  # its state_dict() is the part's state
    optimizer: torch.optim.Optimizer | None = None
    lr_key: str | None = None  # the config key of the optimizer's base learning rate
    scheduled: bool = False  # the student schedule (``schedule: cosine``) applies to its learning rate
    per_rank: bool = False  # under torchrun its state differs between ranks (a store of samples): not rank-checked
    replay: bool = False  # kept across iterations for replay: counted in ``replay_memory_bytes``
    log_prefix: str | None = None  # logged scalars with this prefix are its losses (non-finite: its lr is lowered)

    def __post_init__(self) -> None:
        if self.optimizer is not None and self.lr_key is None:
            raise ValueError(f"part '{self.name}' has an optimizer but no lr_key")


@contextlib.contextmanager
def keep_buffers(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Restore every buffer of ``modules`` on exit: drawing samples for a measurement or a plot runs generators in
    training mode, which moves BatchNorm running statistics and spectral norm's power-iteration vectors; the
    training run must not see that it was measured."""
    buffers = [b for m in modules for b in m.buffers()]
    saved = [b.detach().clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in zip(buffers, saved):
                b.copy_(v)


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes of an optimizer's per-parameter state (Adam moments, momentum buffers)."""
    if optimizer is None:
        return 0
    return sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))


@dataclass
class PartContext:
    """What synthesizers and objective terms are built from (one per method instance)."""

    teacher: nn.Module  # frozen, eval mode
    student: nn.Module
    info: DatasetInfo
    cfg: Any  # the method's config (a ``DistillConfig`` subclass)
    memory_format: torch.memory_format
    precision: Precision  # the synthesis passes' precision: ``precision()`` is its autocast context
    wrap: Callable[[nn.Module], nn.Module]  # DDP wrapper for passes that train a part (identity in one process)

    @property
    def device(self) -> torch.device:
        """Where the run computes: the teacher's device (parts create their tensors there)."""
        return module_device(self.teacher)

    def build(self, factory: Callable[[], nn.Module], memory_format: bool = True) -> nn.Module:
        """A part made by ``factory`` on the host (seeded: the same initial weights on every device), then moved to
        the run's device (and memory format, unless ``memory_format`` is false: storage-only buffers)."""
        with torch.device("cpu"):
            module = factory()
        if memory_format:
            return module.to(device=self.device, memory_format=self.memory_format)
        return module.to(device=self.device)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module with neither)."""
    t = next(itertools.chain(module.parameters(), module.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


__all__ = ["Part", "PartContext", "keep_buffers", "module_bytes", "module_device", "optimizer_state_bytes"]
