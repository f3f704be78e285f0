"""ADI: DeepInversion with its Adaptive DeepInversion competition term (Yin, Molchanov, Li, Alvarez, Mallya,
Hoiem, Jha, Kautz, "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion", CVPR 2020), run as
zju-vipa/DataFree's benchmark runs it: pixels optimised per round into a pool that the student trains from.

Each iteration is one round. Synthesis (``pixels`` synthesizer): a fresh batch x ~ N(0, I) with random sorted
targets y, ``generator_steps`` Adam steps on a jittered/flipped view v of x (x clamped to the pixel range) of

    L_x = w_bn * sum_l ( ||mu_l(v) - mu_l||_2 + ||var_l(v) - sigma2_l||_2 ) + w_class * CE(T(v), y)
          + w_adversarial * (1 - clamp(JS_3(S(v), T(v)), 0, 1)) + w_tv * TV_1(x) + w_l2 * mean_b ||x_b||_2

then the batch joins the pool (8-bit images + teacher logits). Student, ``student_steps`` steps on pool
batches, augmented as the data set's teachers are trained (crop 4 + flip for natural images, none for
MNIST-like data; the teacher labels the augmented batch):

    L_S = T^2 KL( softmax(T(x) / T) || softmax(S(x) / T) ),  T = 20

Defaults (source: ``DF scripts/deepinv/deepinv_cifar10_wrn402_wrn161.sh``, ``DF datafree_kd.py``): batch 256,
1000 synthesis steps per round at lr 0.1, Adam betas (0.5, 0.99), bn 10, class 1, adversarial 1, tv 1e-3,
l2 0, T 20, SGD lr 0.1 momentum 0.9 wd 1e-4 with a cosine schedule, 400 student steps per round. CPU suites
shrink the round; the pool is capped at ``pool_size`` images (DataFree keeps all). Needs a BatchNorm teacher.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..synthesizers import PixelSettings
from .base import register_method
from .distill_config import require_non_negative, require_positive
from .pool_method import PoolConfig, PoolMethod


@dataclass
class ADIConfig(PoolConfig, PixelSettings):
    batch_size: int = 256  # DF: synthesis batch and student batch
    generator_steps: int = 1000  # DF g_steps: pixel-optimisation steps per round
    lr_generator: float = 0.1  # DF lr_g (Adam on the pixels)
    generator_beta1: float = 0.5  # DF
    student_steps: int = 400  # DF kd_steps per round
    lr_student: float = 0.1  # DF
    weight_decay: float = 1e-4  # DF
    w_bn: float = 10.0  # DF bn
    w_class: float = 1.0  # DF oh (CE toward the round's random targets)
    w_adversarial: float = 1.0  # DF adv
    w_tv: float = 1e-3  # DF datafree_kd.py (hard-coded)
    w_l2: float = 0.0  # DF datafree_kd.py (hard-coded)
    student_loss: str = "kl"  # DF KLDiv
    kd_temperature: float = 20.0  # DF T

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "generator_steps")
        require_non_negative(self, "w_l2", "pixel_jitter")


@register_method("adi")
class ADI(PoolMethod):
    Config = ADIConfig
    paper = "Yin et al., Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion, CVPR 2020"
    synthesizer = "pixels"
    mirror_keys = ("pixel_flip",)

    objective_weights = ("w_bn", "w_class", "w_adversarial", "w_tv")  # and its own w_l2

    def generator_objective(self) -> list[tuple[str, float]]:
        c = self.cfg
        return [("bn_statistics", c.w_bn), ("class_ce", c.w_class), ("competition", c.w_adversarial),
                ("total_variation", c.w_tv), ("image_l2", c.w_l2)]

    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        self.set_learning_rates(it)
        out, x, _ = self.synth.round(self.cfg.batch_size)
        out["s_loss"] = self.learn_from_pool(x)
        return out
