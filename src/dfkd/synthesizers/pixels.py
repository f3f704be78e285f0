"""Direct pixel optimisation (DeepInversion, Yin et al. "Dreaming to Distill", CVPR 2020; as zju-vipa/DataFree
``datafree/synthesis/deepinversion.py`` runs it): the synthetic images are the parameters.

Each ``round(n)``: x ~ N(0, I) of shape (n, C, H, W) in the normalised space, targets y uniform over the
classes (sorted), Adam([x], lr_generator, betas (generator_beta1, pixel_beta2)) for ``generator_steps``
iterations of

    v = jitter_flip(x)      (roll by (dy, dx) in [-pixel_jitter, pixel_jitter], flip with p 1/2: one draw per batch)
    x <- Adam step on L = sum_i w_i term_i(T(v), S(v), y, source=x)
    x <- clamp(x) per channel to [-m/s, (1 - m)/s], the [0, 1] pixel range

and the final iterate is the round's batch (DataFree's code keeps it too: its ``best_inputs`` aliases x).
Nothing persists between rounds, so the synthesizer has no parts; a pool keeps what rounds produced.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import rng
from ..errors import DfkdError
from ..parts import PartContext
from ..terms import Objective
from .base import Synthesizer, register_synthesizer, top_class_fraction


@dataclass
class PixelSettings:
    """Config keys of pixel optimisation (a method config that uses it inherits these)."""

    pixel_jitter: int = 4  # DataFree: 1/8 of the side (4 px at 32x32)
    pixel_flip: bool = True  # DataFree: random horizontal flip of the view
    pixel_beta2: float = 0.99  # DataFree: Adam betas (0.5, 0.99)


def check_jitter(jitter: int, input_shape: tuple[int, ...], key: str) -> None:
    """Refuse a roll as large as the image (a roll by the side is the identity, and larger ones repeat smaller)."""
    side = min(input_shape[-2:])
    if jitter >= side:
        raise DfkdError(f"{key}={jitter} must be smaller than the image side ({side} px)")


def jitter_flip(x: torch.Tensor, jitter: int, flip: bool) -> torch.Tensor:
    """One random roll (dy, dx) and one random flip for the whole batch, as DeepInversion's ``jitter_and_flip``.
    The draws are host-side on purpose: the shifts and the flip decide the shape of the ops, not their data."""
    if jitter > 0:
        dy, dx = (int(v) for v in rng.randint(-jitter, jitter + 1, (2,)))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if flip and bool(rng.rand(()) < 0.5):
        x = x.flip(3)
    return x


@register_synthesizer("pixels")
class PixelSynthesizer(Synthesizer):
    """Pixels optimised from noise on the objective each round, with jitter/flip and clamping (DeepInversion)."""

    def __init__(self, ctx: PartContext, objective: Objective) -> None:
        super().__init__(ctx, objective)
        info = ctx.info
        if not hasattr(ctx.cfg, "pixel_jitter"):
            raise DfkdError(f"the pixels synthesizer needs the PixelSettings keys in {type(ctx.cfg).__name__}")
        if not objective:
            raise DfkdError("pixel optimisation needs an objective, but every term weight is 0")
        check_jitter(ctx.cfg.pixel_jitter, ctx.info.input_shape, "pixel_jitter")
        mean = torch.tensor(info.mean, device=ctx.device).view(1, -1, 1, 1)
        std = torch.tensor(info.std, device=ctx.device).view(1, -1, 1, 1)
        self.low, self.high = -mean / std, (1 - mean) / std  # (1, C, 1, 1) the [0, 1] pixel range, normalised

    def round(self, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Optimise a fresh batch; returns (logged terms of the last step, the batch (detached), its targets)."""
        c, dev = self.ctx.cfg, self.ctx.device
        x = rng.randn(n, *self.ctx.info.input_shape, device=dev).contiguous(memory_format=self.ctx.memory_format)
        x.requires_grad_(True)
        targets = rng.randint(0, self.ctx.info.num_classes, (n,), device=dev).sort().values
        opt = torch.optim.Adam([x], lr=c.lr_generator, betas=(c.generator_beta1, c.pixel_beta2))
        out: dict[str, torch.Tensor] = {}
        for _ in range(c.generator_steps):
            view = jitter_flip(x, c.pixel_jitter, c.pixel_flip)
            with self.ctx.precision():
                p = self.objective.passes(view, targets=targets, source=x)
            loss, terms = self.objective(p)
            self.ctx.precision.minimize(loss, [opt, *self.objective.optimizers()])
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, self.high), self.low))
            out = {k: v.detach() for k, v in terms.items()}
            out["g_loss"] = loss.detach()
            out["top_class_frac"] = top_class_fraction(p.t32.detach())
        self.objective.after_round()
        return out, x.detach(), targets

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel noise, clamped to the pixel range: what a round starts from (rounds make the real samples)."""
        x = rng.randn(n, *self.ctx.info.input_shape, device=self.low.device, generator=generator)
        return torch.maximum(torch.minimum(x, self.high), self.low).contiguous(memory_format=self.ctx.memory_format)
