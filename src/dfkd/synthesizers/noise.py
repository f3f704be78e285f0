"""The noise synthesizer: x ~ N(0, I) in the teacher's normalised input space (the range of standardised real
images), nothing trained. The random-input baseline of Fang et al. (DFAD, arXiv:1912.11006)."""
from __future__ import annotations

import torch

from .. import rng
from .base import Synthesizer, register_synthesizer


@register_synthesizer("noise")
class NoiseSynthesizer(Synthesizer):
    """Gaussian noise in the normalised input space; nothing trained (the random baseline)."""

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = rng.randn(n, *self.ctx.info.input_shape, device=self.ctx.device, generator=generator)
        return x.contiguous(memory_format=self.ctx.memory_format)
