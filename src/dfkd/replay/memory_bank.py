"""MB-DFKD's memory bank (Binici et al., WACV 2022): a ring buffer of past synthetic samples.

An ``nn.Module`` whose storage is a buffer, so ``state_dict()`` checkpoints it with the run. Stored samples
are real memory (and data-like samples kept around): ``nbytes()`` is what ``replay_memory_bytes`` reports.
"""
from __future__ import annotations

import torch
from torch import nn

from ..parts import module_bytes


class MemoryBank(nn.Module):
    def __init__(self, capacity: int, sample_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if capacity <= 0:
            raise ValueError(f"memory bank capacity must be positive, got {capacity}")
        self.register_buffer("samples", torch.zeros(capacity, *sample_shape, dtype=dtype))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # filled slots
        self.register_buffer("head", torch.zeros((), dtype=torch.long))  # next slot to write

    @property
    def capacity(self) -> int:
        return self.samples.shape[0]

    def __len__(self) -> int:
        return int(self.count)

    @torch.no_grad()
    def push(self, x: torch.Tensor) -> None:
        """Store samples (B, ...) at the head, overwriting the oldest once full."""
        x = x.detach().to(self.samples.dtype)[-self.capacity :]
        idx = (int(self.head) + torch.arange(x.shape[0])) % self.capacity
        self.samples[idx] = x
        self.head.fill_((int(self.head) + x.shape[0]) % self.capacity)
        self.count.fill_(min(self.capacity, int(self.count) + x.shape[0]))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n stored samples drawn uniformly with replacement (empty bank: an empty batch)."""
        filled = int(self.count)
        if filled == 0:
            return self.samples[:0]
        return self.samples[torch.randint(0, filled, (n,), generator=generator)]

    def nbytes(self) -> int:
        return module_bytes(self)
