"""The noise synthesizer: x ~ N(0, I) in the teacher's normalised input space (the range of standardised real
images), nothing trained. The random-input baseline of Fang et al. (DFAD, arXiv:1912.11006)."""
from __future__ import annotations

import torch

from .base import Synthesizer, register_synthesizer


@register_synthesizer("noise")
class NoiseSynthesizer(Synthesizer):
    """Gaussian noise in the normalised input space; nothing trained (the random baseline)."""

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        draw_on = generator.device if generator is not None else self.ctx.device
        x = torch.randn(n, *self.ctx.info.input_shape, generator=generator, device=draw_on).to(self.ctx.device)
        return x.contiguous(memory_format=self.ctx.memory_format)
