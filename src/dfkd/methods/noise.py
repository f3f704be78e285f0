"""The random baseline: the student imitates the teacher on pure Gaussian noise (as in the DFAD paper).

x ~ N(0, I) in the teacher's normalised input space (the range of standardised real images); no
generator is trained. L_S = mean |S(x) - T(x)| (or KD with ``student_loss: kl``). Any method whose
generator learns something must beat it with the same budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Method, register_method
from .distill_config import DistillConfig


@dataclass
class NoiseConfig(DistillConfig):
    student_steps: int = 5  # same student budget per iteration as DFAD


@register_method("noise")
class NoiseBaseline(Method):
    Config = NoiseConfig
    paper = "random-input baseline of Fang et al., arXiv:1912.11006"
    synthesizer = "noise"
    conditional_synthesis = False
    objective_weights = ()  # no generator: nothing is optimised toward the teacher

    def generator_objective(self) -> list[tuple[str, float]]:
        return []

    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        self.set_learning_rates(it)
        s_losses = self.novel_student_steps(self.cfg.student_steps)
        return {"s_loss": torch.stack(s_losses).mean()} if s_losses else {}
