"""MB-DFKD's memory bank (Binici et al., WACV 2022): a ring buffer of past synthetic samples.

An ``nn.Module`` whose storage is a buffer, so ``state_dict()`` checkpoints it with the run. Stored samples
are real memory (and data-like samples kept around): ``nbytes()`` is what ``replay_memory_bytes`` reports.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import rng
from ..parts import module_bytes


class MemoryBank(nn.Module):
    def __init__(self, capacity: int, sample_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if capacity <= 0:
            raise ValueError(f"memory bank capacity must be positive, got {capacity}")
        self.register_buffer("samples", torch.zeros(capacity, *sample_shape, dtype=dtype))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # filled slots
        self.register_buffer("head", torch.zeros((), dtype=torch.long))  # next slot to write
        # Host copies of the two counters: indexing reads these, so a bank on a GPU never waits for the device.
        self._count = self._head = 0
        self.register_load_state_dict_post_hook(lambda module, _keys: module._read_counters())

    def _read_counters(self) -> None:
        self._count, self._head = int(self.count), int(self.head)  # after a load: once, not per step

    @property
    def capacity(self) -> int:
        return self.samples.shape[0]

    def __len__(self) -> int:
        return self._count

    @torch.no_grad()
    def push(self, x: torch.Tensor) -> None:
        """Store samples (B, ...) at the head, overwriting the oldest once full."""
        x = x.detach().to(self.samples.dtype)[-self.capacity :]
        idx = (self._head + torch.arange(x.shape[0], device=self.samples.device)) % self.capacity
        self.samples[idx] = x
        self._head = (self._head + x.shape[0]) % self.capacity
        self._count = min(self.capacity, self._count + x.shape[0])
        self.head.fill_(self._head)
        self.count.fill_(self._count)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n stored samples drawn uniformly with replacement (empty bank: an empty batch)."""
        if self._count == 0:
            return self.samples[:0]
        return self.samples[rng.randint(0, self._count, (n,), device=self.samples.device, generator=generator)]

    def nbytes(self) -> int:
        return module_bytes(self)
