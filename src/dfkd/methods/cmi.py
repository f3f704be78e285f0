"""CMI: Contrastive Model Inversion (Fang, Song, Wang, Shen, Wang, Song; "Contrastive Model Inversion for
Data-Free Knowledge Distillation", IJCAI 2021), as zju-vipa/DataFree ``datafree/synthesis/contrastive.py``
runs it.

Each iteration is one synthesis round. The generator (DAFL/CMI architecture ending in a sigmoid and the data
set's normaliser, so every sample is a valid image) is re-initialised (weights N(0, 0.02), BatchNorm gamma
N(1, 0.02), biases 0), a fresh latent z ~ N(0, I) and random sorted targets y are drawn, and Adam over
{G, z} (lr_generator, betas (0.5, 0.999)) takes ``generator_steps`` steps on, with v = crop+flip(G(z)):

    L = w_bn * L_bn(T(v)) + w_class * CE(T(v), y) + w_adversarial * (-mean_b [argmax S = argmax T]_b KL(T || S))
        + w_contrastive * L_cr(v, local view of G(z), memory)                 (``dfkd.terms.contrastive``)

The iterate with the lowest L is kept: its images join the pool (8-bit + teacher logits), its instance
features join the contrastive memory. The student then takes ``student_steps`` steps on pool batches,
augmented like the data set's teachers (the teacher labels the augmented batch):

    L_S = T^2 KL( softmax(T(x) / T) || softmax(S(x) / T) ),  T = 20

Defaults (``DF scripts/cmi/scratch_cmi_cifar10_wrn402_wrn161.sh``, ``DF datafree_kd.py``): synthesis batch
256, 200 steps at lr 1e-3, latent 256, width 64, bn 1, class 1, adversarial 0.5, contrastive 0.8 (tau 0.1,
head 256, memory 40,960, 4,096 negatives), T 20, SGD 0.1 / momentum 0.9 / wd 1e-4, cosine, 400 student steps
per round. One batch size serves synthesis and the student (DataFree's scratch script uses 128 for the
student). The pool is capped at ``pool_size`` images. Needs a BatchNorm teacher.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import rng
from ..data.augment import Augmentation, augment_batch
from ..parts import Part
from ..synthesizers import top_class_fraction
from .base import register_method
from .distill_config import require_non_negative, require_positive
from .pool_method import LowestLoss, PoolConfig, PoolMethod


@dataclass
class CMIConfig(PoolConfig):
    batch_size: int = 256  # DF synthesis batch
    generator_steps: int = 200  # DF g_steps per round
    lr_generator: float = 1e-3  # DF lr_g (generator, latent and projection head)
    generator_beta1: float = 0.5  # DF
    latent_dim: int = 256  # DF nz
    generator_width: int = 64  # DF ngf
    generator_options: dict[str, Any] = field(default_factory=lambda: {"output": "sigmoid"})  # DF: sigmoid + normaliser
    student_steps: int = 400  # DF kd_steps per round
    lr_student: float = 0.1  # DF
    weight_decay: float = 1e-4  # DF
    w_bn: float = 1.0  # DF bn
    w_class: float = 1.0  # DF oh
    w_adversarial: float = 0.5  # DF adv
    w_contrastive: float = 0.8  # DF cr
    contrastive_bank_size: int = 40960  # DF bank_size (the other contrastive settings: DistillConfig's, DF's)
    student_loss: str = "kl"  # DF KLDiv
    kd_temperature: float = 20.0  # DF T
    view_crop: int = 4  # the global view: DF RandomCrop(pad 4) + flip
    view_flip: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "generator_steps", "contrastive_bank_size")
        require_non_negative(self, "view_crop")


@torch.no_grad()
def reinitialise(generator: nn.Module) -> None:
    """DataFree's ``reset_model``: conv/linear weights N(0, 0.02), biases 0, BatchNorm gamma N(1, 0.02), beta 0
    (drawn on the host, ``dfkd.rng``: the same round on every device)."""
    def normal(w: torch.Tensor, mean: float) -> None:
        w.copy_(rng.randn(*w.shape, device=w.device).mul_(0.02).add_(mean))

    for m in generator.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            normal(m.weight, 0.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            normal(m.weight, 1.0)
            nn.init.zeros_(m.bias)


@register_method("cmi")
class CMI(PoolMethod):
    Config = CMIConfig
    paper = "Fang et al., Contrastive Model Inversion for Data-Free Knowledge Distillation, IJCAI 2021"
    mirror_keys = ("view_flip",)

    objective_weights = ("w_bn", "w_class", "w_adversarial", "w_contrastive")

    def generator_objective(self) -> list[tuple[str, float]]:
        c = self.cfg
        return [("bn_statistics", c.w_bn), ("class_ce", c.w_class), ("adversarial_kl_masked", c.w_adversarial),
                ("contrastive", c.w_contrastive)]

    def __init__(self, teacher, student, info, cfg: CMIConfig, dist=None, device=None) -> None:
        super().__init__(teacher, student, info, cfg, dist, device)
        # The generator restarts every round with a fresh Adam over {G, z}: no optimizer state to keep. Under
        # torchrun each rank inverts its own round (its own draws, no gradient averaging), so it is per rank.
        self.parts["generator"] = Part("generator", self.synth.generator, per_rank=True)
        self.contrastive = self.objective.term("contrastive")
        self.view = Augmentation(crop_padding=self.cfg.view_crop, hflip=self.cfg.view_flip)

    def synthesis_round(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One CMI round (module docstring); returns the logged terms of the last step and the kept batch."""
        c, gen = self.cfg, self.synth.generator
        reinitialise(gen)
        z = gen.sample_latent(c.batch_size).requires_grad_(True)
        targets = rng.randint(0, self.info.num_classes, (c.batch_size,), device=z.device).sort().values
        opt = torch.optim.Adam([{"params": gen.parameters()}, {"params": [z]}], lr=c.lr_generator,
                               betas=(c.generator_beta1, 0.999))
        best = LowestLoss(z.device)
        out: dict[str, torch.Tensor] = {}
        for _ in range(c.generator_steps):
            with self.precision():
                x = gen(z)  # (B, C, H, W), normalised, valid pixels
                view = augment_batch(x, self.view).contiguous(memory_format=self.memory_format)
                p = self.objective.passes(view, targets=targets, source=x)
            loss, terms = self.objective(p)
            best.offer(loss, x, self.contrastive.last_features if self.contrastive is not None else None)
            self.amp.minimize(loss, [opt, *self.objective.optimizers()])
            out = {k: v.detach() for k, v in terms.items()}
            out["g_loss"] = loss.detach()
            out["top_class_frac"] = top_class_fraction(p.t32.detach())
        best_x, best_f = best.values
        if best_f is not None:
            self.contrastive.remember(best_f)
        self.objective.after_round()
        return out, best_x

    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        self.set_learning_rates(it)
        out, x = self.synthesis_round()
        out["s_loss"] = self.learn_from_pool(x)
        return out
