"""DAFL: Data-Free Learning of Student Networks (Chen et al., ICCV 2019).

Generator G minimises the teacher-response priors only (no student in its objective):
    L_G = w_oh * CE(T(x), argmax T(x)) + w_ie * sum_k pbar_k log10 pbar_k - w_a * mean |f_T(x)|,   x = G(z)
with (w_oh, w_ie, w_a) = (1, 5, 0.1). The student imitates the teacher on the same batch by KD:
    L_S = KL( softmax(T(x)) || softmax(S(x)) )       (temperature 1, as in the DAFL code)
One iteration = one generator step whose batch (and teacher logits) the first student step reuses, as in
DAFL's joint update, plus ``student_steps - 1`` steps on fresh batches.
Defaults from the DAFL MNIST code: Adam for both, lr_G 0.2 and lr_S 2e-3, latent 100, batch 512.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Method, register_method
from .distill_config import DistillConfig


@dataclass
class DAFLConfig(DistillConfig):
    student_steps: int = 1  # DAFL updates G and S together on one batch
    batch_size: int = 512  # DAFL MNIST
    lr_generator: float = 0.2  # DAFL MNIST (Adam)
    student_optimizer: str = "adam"  # DAFL MNIST
    lr_student: float = 2e-3  # DAFL MNIST
    weight_decay: float = 0.0
    w_one_hot: float = 1.0  # DAFL
    w_info_entropy: float = 5.0  # DAFL
    w_activation: float = 0.1  # DAFL
    student_loss: str = "kl"
    kd_temperature: float = 1.0


@register_method("dafl")
class DAFL(Method):
    Config = DAFLConfig
    paper = "Chen et al., Data-Free Learning of Student Networks, ICCV 2019"

    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        self.set_learning_rates(it)
        out: dict[str, torch.Tensor] = {}
        x, t_logits = None, None
        for _ in range(self.cfg.generator_steps):
            out, x, t_logits = self.generator_step()
        first = (x, t_logits) if x is not None else None  # the generator step's batch serves the first step
        s_losses = self.novel_student_steps(self.cfg.student_steps, first)
        if s_losses:
            out["s_loss"] = torch.stack(s_losses).mean()
        return out
