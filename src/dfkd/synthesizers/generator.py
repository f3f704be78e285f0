"""The generator synthesizer: a generator network trained on the method's objective, one Adam step per
``step()`` (DAFL, DFAD, MB-DFKD, PRE-DFKD):

    x = G(z), z ~ N(0, I);   G <- Adam step on  L_G = sum_i w_i term_i(T(x), S(x), ...)

The generator comes from the generator registry (``cfg.generator``, ``generator_width``, ``latent_dim``,
``generator_options``); Adam with ``lr_generator`` and betas (``generator_beta1``, 0.999).

Class-conditional generation (``class_conditional``; the conditional generators of NAYER and of conditional
GANs): the generator's input is ``[z, onehot(y)]``, with the classes ``y`` balanced in every batch (each class
``n / C`` times, in random order), and the objective gets ``y`` as its targets, so its ``class_ce`` term
(``w_class``) pulls ``T(G(z, y))`` toward ``y``: every class is synthesised, not only those the teacher's
argmax happens to favour.

Optional jitter (``generator_jitter`` = N > 0; DeepInversion's, for a trained generator): the objective scores
``roll(G(z), (dy, dx))`` with one (dy, dx) in [-N, N]^2 per step, so the generator is rewarded only for what the
teacher recognises wherever it sits, not for a pattern tied to exact pixel positions; the step returns that view.

Optional EMA copy (MAD, Do et al. NeurIPS 2022; ``ema_generator`` > 0): a slowly moving copy of the
generator, ``ema <- m * ema + (1 - m) * G`` after every step (BatchNorm buffers copied), supplies the last
``round(n * ema_fraction)`` samples of every ``sample(n)``.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .. import rng
from ..errors import DfkdError
from ..models.generator import create_generator
from ..models.train_modes import ema_update, freeze
from ..parts import Part, PartContext
from ..terms import Objective
from .base import Synthesizer, register_synthesizer, top_class_fraction
from .pixels import check_jitter, jitter_flip


@register_synthesizer("generator")
class GeneratorSynthesizer(Synthesizer):
    """A generator network trained one Adam step per ``step()`` on the method's objective (optional EMA copy)."""

    def __init__(self, ctx: PartContext, objective: Objective) -> None:
        super().__init__(ctx, objective)
        c = ctx.cfg
        if not objective:
            raise DfkdError("this method trains a generator but every generator loss weight is 0")
        check_jitter(c.generator_jitter, ctx.info.input_shape, "generator_jitter")
        self.num_classes = ctx.info.num_classes if c.class_conditional else 0
        self.generator = ctx.build(lambda: create_generator(
            c.generator, latent_dim=c.latent_dim + self.num_classes, out_shape=ctx.info.input_shape,
            width=c.generator_width, info=ctx.info, **c.generator_options)).train()
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=c.lr_generator,
                                          betas=(c.generator_beta1, 0.999), foreach=True)
        self.generator_train = ctx.wrap(self.generator)  # DDP under torchrun: gradients averaged over ranks
        self.ema = freeze(copy.deepcopy(self.generator)).train() if c.ema_generator > 0 else None  # batch stats

    def parts(self) -> list[Part]:
        parts = [Part("generator", self.generator, self.optimizer, "lr_generator", log_prefix="g_")]
        if self.ema is not None:
            parts.append(Part("generator_ema", self.ema))
        return parts

    def inputs(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The generator's input for ``n`` samples and their classes: (z, None), or ([z, onehot(y)], y) with
        balanced classes when class-conditional. Drawn on the host (``dfkd.rng``)."""
        if not self.num_classes:
            return self.generator.sample_latent(n, generator), None
        dev = next(self.generator.parameters()).device
        z = rng.randn(n, self.ctx.cfg.latent_dim, device=dev, generator=generator)
        y = rng.randperm(n, device=dev, generator=generator) % self.num_classes  # each class n / C times
        return torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1), y

    def step(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """One generator update. Returns (logged terms, the batch it generated (detached), the teacher's logits on
        it (detached)), so a method may reuse the batch for a student step without another teacher pass."""
        z, y = self.inputs(self.ctx.cfg.batch_size)
        jitter = self.ctx.cfg.generator_jitter
        with self.ctx.precision():
            source = self.generator_train(z)  # (B, C, H, W)
            # the objective scores a translated view (jitter); priors on the image itself see the source
            x = jitter_flip(source, jitter, flip=False) if jitter else source
            p = self.objective.passes(x, targets=y, source=source if jitter else None)
        loss, terms = self.objective(p)
        self.ctx.precision.minimize(loss, [self.optimizer, *self.objective.optimizers()])
        self.objective.after_update()
        if self.ema is not None:
            ema_update(self.ema, self.generator, self.ctx.cfg.ema_generator)
        out = {k: v.detach() for k, v in terms.items()}
        out["g_loss"] = loss.detach()
        out["top_class_frac"] = top_class_fraction(p.t32.detach())
        return out, x.detach(), p.t_logits.detach()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A detached batch (generator in train mode: its BatchNorms standardise each batch)."""
        z, _ = self.inputs(n, generator)  # (n, latent [+ classes])
        with self.ctx.precision():
            if self.ema is None:
                return self.generator(z)
            n_ema = int(round(n * self.ctx.cfg.ema_fraction))
            parts = [g(zs) for g, zs in ((self.generator, z[: n - n_ema]), (self.ema, z[n - n_ema:])) if zs.shape[0] > 0]
            return torch.cat(parts) if len(parts) > 1 else parts[0]

    def close(self) -> None:
        if isinstance(self.generator_train, torch.nn.parallel.DistributedDataParallel):
            self.generator_train = self.generator_train.module
