"""A synthetic pool: a bounded store of synthesised images and their teacher logits that student steps sample
from (CMI, Fang et al. IJCAI 2021; Fast-DFKD, Fang et al. AAAI 2022; DataFree's DeepInversion). The pool is
what those methods replay, so its bytes (``parts.module_bytes``) are reported as replay memory.

Images are kept as 8-bit pixels, as DataFree keeps them (PNG files): ``quantize`` maps a normalised batch to
what the pool will hold, so the stored teacher logits are the teacher's response to exactly the stored
images. Once ``capacity`` images are held, the oldest are overwritten (DataFree's pool has no cap; a cap
keeps a long run's memory bounded). Buffers grow as the pool fills, so an empty pool costs nothing in a
checkpoint, and a checkpoint restores a pool of any fill.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import rng
from ..data.info import DatasetInfo


@dataclass
class PoolSettings:
    """Config keys of the synthetic pool (a method config that uses one inherits these)."""

    pool_size: int = 51200  # images kept; DataFree's CIFAR-10 runs synthesise 200 rounds x 256 = 51,200


class SyntheticPool(nn.Module):
    def __init__(self, capacity: int, info: DatasetInfo) -> None:
        super().__init__()
        if capacity <= 0:
            raise ValueError(f"pool capacity must be positive, got {capacity}")
        self.capacity, self.info = capacity, info
        self.register_buffer("images", torch.zeros(0, *info.input_shape, dtype=torch.uint8))
        self.register_buffer("logits", torch.zeros(0, info.num_classes))
        self.register_buffer("head", torch.zeros((), dtype=torch.long))  # next slot to overwrite once full
        self.register_buffer("added", torch.zeros((), dtype=torch.long))  # images added over the run

    def __len__(self) -> int:
        return self.images.shape[0]

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """A normalised batch as the pool stores it: 8-bit pixels, normalised again (fp32)."""
        return self.info.normalize(self._to_uint8(x))

    def _to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        return (self.info.denormalize(x.detach().float()) * 255).round().to(torch.uint8)

    @torch.no_grad()
    def add(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        """Store a batch (normalised) with the teacher's logits on ``quantize(x)``."""
        dev = self.images.device
        images = self._to_uint8(x).to(dev).contiguous()[-self.capacity:]
        logits = logits.detach().float().to(dev)[-self.capacity:]
        self.added += images.shape[0]
        room = self.capacity - len(self)
        if room > 0:
            self.images = torch.cat([self.images, images[:room]])
            self.logits = torch.cat([self.logits, logits[:room]])
            images, logits = images[room:], logits[room:]
        if images.shape[0]:
            idx = (int(self.head) + torch.arange(images.shape[0], device=self.images.device)) % self.capacity
            self.images[idx], self.logits[idx] = images, logits
            self.head.fill_((int(self.head) + images.shape[0]) % self.capacity)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n stored images (normalised fp32) and their teacher logits, drawn uniformly with replacement."""
        if len(self) == 0:
            raise RuntimeError("the synthetic pool is empty")
        idx = rng.randint(0, len(self), (n,), device=self.images.device, generator=generator)
        return self.info.normalize(self.images[idx]), self.logits[idx]

    @torch.no_grad()
    def newest(self, n: int) -> torch.Tensor:
        """The ``n`` most recently added images (normalised fp32), oldest first."""
        n = min(n, len(self))
        end = len(self) if len(self) < self.capacity else int(self.head)  # one past the newest slot
        idx = (end - n + torch.arange(n, device=self.images.device)) % max(1, len(self))
        return self.info.normalize(self.images[idx])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in ("images", "logits"):
            saved = state_dict.get(prefix + key)
            if saved is not None:
                setattr(self, key, torch.zeros_like(saved, device=self.images.device))  # a pool of any fill
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


__all__ = ["PoolSettings", "SyntheticPool"]
