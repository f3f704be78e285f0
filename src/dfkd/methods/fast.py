"""Fast-DFKD: Up to 100x Faster Data-free Knowledge Distillation (Fang, Mo, Wang, Song, Xue, Song; AAAI 2022),
as zju-vipa/Fast-Datafree ``datafree/synthesis/fast_meta.py`` runs it: CMI's rounds into a pool, with a few
synthesis steps per round from a *meta-learned* generator instead of hundreds from a re-initialised one.

A meta-generator G (the DAFL/CMI architecture ending in a sigmoid and the data set's normaliser) persists over
the run. Each iteration is one round: a fast copy G' <- G, a fresh latent z ~ N(0, I) and random sorted targets
y; Adam over {G' (lr_generator), z (lr_latent)}, betas (0.5, 0.999), takes ``generator_steps`` steps on, with
v = crop+flip(G'(z)):

    L = w_bn * L_bn^m(T(v)) + w_class * CE(T(v), y) + w_adversarial * (-mean_b [argmax S = argmax T]_b KL(T || S))

where L_bn^m is the BN prior with momentum m (``bn_momentum``; ``dfkd.terms.bn_statistics``): the batch's
statistics are matched together with an EMA of the earlier rounds'. The iterate with the lowest L joins the pool
(8-bit + teacher logits). The meta-generator then learns an initialisation from which a few steps suffice:

    fomaml:   G <- Adam step (lr_generator * generator_steps) on  sum_k grad_G' L_k      (first-order MAML)
    reptile:  G <- Adam step (lr_generator * generator_steps) on  67 (G - G'_final)

The first ``synthesis_warmup`` rounds only synthesise (no student steps, no adversarial term); afterwards the
student takes ``student_steps`` steps on pool batches, augmented like the data set's teachers, with its cosine
schedule running over the remaining rounds:

    L_S = T^2 KL( softmax(T(x) / T) || softmax(S(x) / T) ),  T = 20

At round ``reset_first_layer_at`` the meta-generator's first layer (its latent projection) is re-initialised
(weights N(0, 0.02), bias 0; the code's ``reset_l0``, at round 120 + warmup in its 220-round runs).

Defaults (``FD scripts/fast_cifar.sh``, the WRN rows with 5 generator steps; ``FD datafree_kd.py``): batch 256,
5 steps per round at lr_g 3e-3 and lr_z 1e-2, latent 256, width 64, bn 10 with momentum 0.9, class 0.4,
adversarial 1.1, warm-up 20 rounds, FOMAML, reset at round 140, T 20, SGD 0.2 / momentum 0.9 / wd 1e-4, cosine,
400 student steps per round. Needs a BatchNorm teacher.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import rng
from ..data.augment import Augmentation, augment_batch
from ..errors import DfkdError
from ..parts import Part
from ..synthesizers import top_class_fraction
from .base import register_method
from .distill_config import require_non_negative, require_positive
from .pool_method import LowestLoss, PoolConfig, PoolMethod

REPTILE_SCALE = 67.0  # FD fast_meta.py reptile_grad: grad = 67 (theta_meta - theta_fast)


@dataclass
class FastConfig(PoolConfig):
    batch_size: int = 256  # FD batch_size (synthesis batch = student batch)
    generator_steps: int = 5  # FD g_steps (2, 5 or 10 in its scripts)
    lr_generator: float = 3e-3  # FD lr_g for 5 steps (2: 5e-3, 10: 2e-3); the meta step uses this x generator_steps
    lr_latent: float = 1e-2  # FD lr_z for 5 steps (2: 1.5e-2)
    generator_beta1: float = 0.5  # FD
    latent_dim: int = 256  # FD nz
    generator_width: int = 64  # FD ngf
    generator_options: dict[str, Any] = field(default_factory=lambda: {"output": "sigmoid"})  # FD: sigmoid + normaliser
    meta_update: str = "fomaml"  # fomaml (FD is_maml=1) | reptile (is_maml=0)
    synthesis_warmup: int = 20  # FD warmup: rounds that only synthesise
    reset_first_layer_at: int = 140  # FD reset_l0 at round 120 + warmup (1-based); 0: never
    student_steps: int = 400  # FD kd_steps per round
    lr_student: float = 0.2  # FD
    weight_decay: float = 1e-4  # FD
    w_bn: float = 10.0  # FD bn
    bn_momentum: float = 0.9  # FD bn_mmt
    w_class: float = 0.4  # FD oh (WRN scripts)
    w_adversarial: float = 1.1  # FD adv (WRN scripts)
    student_loss: str = "kl"  # FD KLDiv
    kd_temperature: float = 20.0  # FD T
    view_crop: int = 4  # FD: RandomCrop(pad 4) + flip of G(z) before the teacher
    view_flip: bool = True

    @property
    def lr_meta_generator(self) -> float:
        """The meta-generator's Adam lr: FD's lr_g x g_steps."""
        return self.lr_generator * self.generator_steps

    @property
    def schedule_start(self) -> int:
        """The student's schedule runs over the rounds after the synthesis-only warm-up."""
        return self.synthesis_warmup

    def notices(self) -> list[str]:
        out = super().notices()
        if self.reset_first_layer_at > self.iterations:
            out.append(f"config 'reset_first_layer_at' ({self.reset_first_layer_at}) is past 'iterations' "
                       f"({self.iterations}): the meta-generator's first layer is never reset (0 says so)")
        return out

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "generator_steps")
        require_non_negative(self, "view_crop", "lr_latent", "synthesis_warmup", "reset_first_layer_at")
        if self.meta_update not in ("fomaml", "reptile"):
            raise DfkdError(f"config 'meta_update' must be one of fomaml, reptile, got '{self.meta_update}'")
        if self.synthesis_warmup >= self.iterations:
            raise DfkdError(f"config 'synthesis_warmup' ({self.synthesis_warmup}) must be below 'iterations' "
                            f"({self.iterations}): the student trains only after the synthesis-only rounds")


@register_method("fast")
class FastDFKD(PoolMethod):
    Config = FastConfig
    paper = "Fang et al., Up to 100x Faster Data-free Knowledge Distillation, AAAI 2022"
    mirror_keys = ("view_flip",)

    objective_weights = ("w_bn", "w_class", "w_adversarial")

    def generator_objective(self) -> list[tuple[str, float]]:
        c = self.cfg
        return [("bn_statistics", c.w_bn), ("class_ce", c.w_class), ("adversarial_kl_masked", c.w_adversarial)]

    def __init__(self, teacher, student, info, cfg: FastConfig, dist=None, device=None) -> None:
        super().__init__(teacher, student, info, cfg, dist, device)
        c = self.cfg
        meta = self.synth.generator
        # The meta-generator and its Adam are the state; each rank meta-learns from its own rounds under torchrun.
        self.meta_optimizer = torch.optim.Adam(meta.parameters(), lr=c.lr_meta_generator,
                                               betas=(c.generator_beta1, 0.999), foreach=True)
        self.parts["generator"] = Part("generator", meta, self.meta_optimizer, "lr_meta_generator", per_rank=True,
                                       log_prefix="g_")
        # The fast copy: reloaded from the meta-generator every round, so not state (no part).
        self.fast = copy.deepcopy(meta)
        self.view = Augmentation(crop_padding=c.view_crop, hflip=c.view_flip)

    @torch.no_grad()
    def _reset_first_layer(self) -> None:
        """FD ``reset_l0``: the latent projection's weight N(0, 0.02) (drawn on the host), bias 0."""
        layer = self.synth.generator.project
        layer.weight.copy_(rng.randn(*layer.weight.shape, device=layer.weight.device).mul_(0.02))
        nn.init.zeros_(layer.bias)

    def synthesis_round(self, it: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One Fast-DFKD round (module docstring); returns the logged terms of the last step and the kept batch."""
        c, meta, fast = self.cfg, self.synth.generator, self.fast
        if c.reset_first_layer_at and it + 1 == c.reset_first_layer_at:
            self._reset_first_layer()
        fast.load_state_dict(meta.state_dict())  # G' <- G (weights and BatchNorm buffers)
        z = meta.sample_latent(c.batch_size).requires_grad_(True)
        targets = rng.randint(0, self.info.num_classes, (c.batch_size,), device=z.device).sort().values
        scale = self.lr_scale.get("generator", 1.0)  # lowered with the meta-generator's after a non-finite rollback
        opt = torch.optim.Adam([{"params": fast.parameters()}, {"params": [z], "lr": c.lr_latent * scale}],
                               lr=c.lr_generator * scale, betas=(c.generator_beta1, 0.999))
        meta_params, fast_params = list(meta.parameters()), list(fast.parameters())
        meta_grads = [torch.zeros_like(p) for p in meta_params] if c.meta_update == "fomaml" else None
        off = ("adversarial",) if it < c.synthesis_warmup else ()  # FD: no adversarial term before KD
        best = LowestLoss(z.device)
        out: dict[str, torch.Tensor] = {}
        for _ in range(c.generator_steps):
            with self.precision():
                x = fast(z)  # (B, C, H, W), normalised, valid pixels
                view = augment_batch(x, self.view).contiguous(memory_format=self.memory_format)
                p = self.objective.passes(view, targets=targets, source=x, off=off)  # no student pass while off
            loss, terms = self.objective(p, off=off)
            best.offer(loss, x)
            self.amp.minimize(loss, [opt])
            if meta_grads is not None:  # FOMAML: the fast copy's gradient at every inner step (a skipped fp16 step: 0)
                with torch.no_grad():
                    for acc, fp in zip(meta_grads, fast_params):
                        if fp.grad is not None:
                            acc.add_(torch.where(torch.isfinite(fp.grad), fp.grad, 0.0))
            out = {k: v.detach() for k, v in terms.items()}
            out["g_loss"] = loss.detach()
            out["top_class_frac"] = top_class_fraction(p.t32.detach())
        with torch.no_grad():
            for mp, fp, acc in zip(meta_params, fast_params, meta_grads or [None] * len(meta_params)):
                mp.grad = acc if acc is not None else (mp - fp).mul_(REPTILE_SCALE)
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        self.objective.after_round()
        return out, best.values[0]

    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        self.set_learning_rates(it)
        out, x = self.synthesis_round(it)
        if it < c.synthesis_warmup:  # the round joins the pool; the student waits
            self.keep_round(x)
            out["s_loss"] = torch.zeros((), device=self.ctx.device)
        else:
            out["s_loss"] = self.learn_from_pool(x)
        return out
