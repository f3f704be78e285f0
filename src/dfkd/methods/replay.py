"""The iteration shared by the replay methods (PRE-DFKD, MB-DFKD): the student rehearses old synthetic
knowledge while it learns from the novel generator.

One iteration (defaults of the official PRE-DFKD code):
    generator_steps x  generator update  (DAFL priors + bounded adversarial JS, see ``losses``)
    student_steps   x  x_nov = G(z) (B samples, no grad); x_rep = replay_batch(round(B * replay_ratio))
                       student update on L1(S([x_nov; x_rep]), T([x_nov; x_rep]))
                       update_memory(x_nov, it, step, T(x_nov))   (VAE update / push into the bank; the
                                                                  teacher's labels from the student step)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DfkdError
from .base import Method
from .distill_config import DistillConfig, require_non_negative


@dataclass
class ReplayConfig(DistillConfig):
    student_steps: int = 10  # PRE-DFKD code: kd_iter 10 student steps per generator step
    batch_size: int = 1024  # PRE-DFKD code (CIFAR); suites size it for the machine
    generator: str = "pre-dfkd"  # PRE-DFKD code: spectral norm, U(-0.08, 0.08) init, BN eps 0.8
    lr_generator: float = 0.02  # PRE-DFKD code
    lr_student: float = 0.1  # PRE-DFKD code: SGD, momentum 0.9, wd 5e-4, cosine
    w_one_hot: float = 1.0  # PRE-DFKD code (oh)
    w_info_entropy: float = 5.0  # PRE-DFKD code (ie)
    w_activation: float = 0.1  # PRE-DFKD code (a)
    w_adversarial: float = 1.0  # our scaling of the JS term (see losses.bounded_js_divergence)
    adversarial_loss: str = "js"  # PRE-DFKD code: JS at temperature 3
    js_temperature: float = 3.0
    student_loss: str = "l1"  # PRE-DFKD code
    replay_ratio: float = 0.125  # PRE-DFKD code: 1024 novel + 128 replayed (8:1)
    replay_start: int = 0  # first iteration whose student steps replay (the code replays from the start)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.replay_ratio <= 8:
            raise DfkdError(f"config 'replay_ratio' must be in [0, 8], got {self.replay_ratio}")
        require_non_negative(self, "replay_start")


class ReplayMethod(Method):
    Config = ReplayConfig

    def replay_batch(self, n: int, it: int) -> torch.Tensor | None:
        """n detached replay samples in the teacher's input space (or None / empty when none yet)."""
        raise NotImplementedError

    def update_memory(self, x_novel: torch.Tensor, it: int, step: int,
                      t_novel: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Let the replay memory learn from (or store) this student step's novel batch; ``t_novel``: the teacher's
        logits on it from the student step (None when the student saw an augmented batch)."""
        raise NotImplementedError

    @property
    def n_replay(self) -> int:
        return int(round(self.cfg.batch_size * self.cfg.replay_ratio))

    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        self.set_learning_rates(it)
        out: dict[str, torch.Tensor] = {}
        for _ in range(c.generator_steps):
            out, _, _ = self.generator_step()
        s_losses, mem_logs = [], {}
        for step, (x_novel, _) in enumerate(self.student_batches(c.student_steps)):  # x_novel: (B, C, H, W)
            x = x_novel
            if it >= c.replay_start and self.n_replay > 0:
                x_replay = self.replay_batch(self.n_replay, it)  # (B * replay_ratio, C, H, W)
                if x_replay is not None and x_replay.shape[0] > 0:
                    x = torch.cat([x_novel, x_replay.to(x_novel.dtype)])
            loss, t_logits = self.labelled_student_step(x)
            s_losses.append(loss)
            t_novel = t_logits[: x_novel.shape[0]] if t_logits is not None else None
            for k, v in self.update_memory(x_novel, it, step, t_novel).items():
                mem_logs.setdefault(k, []).append(v)
        if s_losses:
            out["s_loss"] = torch.stack(s_losses).mean()
        out.update({k: torch.stack(v).mean() for k, v in mem_logs.items()})
        return out
