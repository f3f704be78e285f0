"""The iteration shared by the replay methods (PRE-DFKD, MB-DFKD): the student rehearses old synthetic
knowledge while it learns from the novel generator.

One iteration (defaults of the official PRE-DFKD code):
    generator_steps x  generator update  (DAFL priors + bounded adversarial JS, see ``losses``)
    student_steps   x  x_nov = G(z) (B samples, no grad); x_rep = replay_batch(round(B * replay_ratio))
                       student update on L1(S([x_nov; x_rep]), T([x_nov; x_rep]))
                       update_memory(x_nov, it, step, T(x_nov))   (VAE update / push into the bank; the
                                                                  teacher's labels from the student step)

Generator warm-up (``generator_warmup`` = m > 0; ours, off in both papers): iteration 0 runs m generator updates
before its own, so the student's first steps already see samples the priors have shaped (with a BatchNorm
teacher the BN prior takes tens of iterations to fall; BENCHMARKS.md, "A generator warm-up on the BN suite").

Class-balanced replay (``replay_balance`` = k > 1; ours, off in both papers): the memory draws k x n samples
and the n replayed are a class-balanced subset by the teacher's argmax, taken round-robin over the classes
(every class's first sample, then every class's second, ...), so a memory whose draws favour a few classes
(PRE-DFKD's VAE decoding N(0, I): BENCHMARKS.md, "The VAE replays a skewed distribution") rehearses all of
them. Deterministic given the draws: no extra randomness, the same on every device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
    replay_balance: int = 1  # draw k x n from the memory, replay a class-balanced n of them (1: off, the papers)
    generator_warmup: int = 0  # extra generator updates before iteration 0's (0: off, the papers)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.replay_ratio <= 8:
            raise DfkdError(f"config 'replay_ratio' must be in [0, 8], got {self.replay_ratio}")
        require_non_negative(self, "replay_start", "generator_warmup")
        if self.replay_balance < 1:
            raise DfkdError(f"config 'replay_balance' must be an integer >= 1, got {self.replay_balance}")


def class_balanced_indices(labels: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    """Indices of n of ``labels`` (int, (m,), m >= n) taken round-robin over the classes: each class's first
    occurrence, then each class's second, ... (ties within a round in order of position). A class with fewer
    samples than its share leaves its places to the others. No host sync, no randomness."""
    m = labels.shape[0]
    one_hot = F.one_hot(labels, num_classes)  # (m, K)
    rank = (one_hot.cumsum(0) * one_hot).sum(1) - 1  # (m,) position of each sample among its class's samples
    key = rank * m + torch.arange(m, device=labels.device)
    return key.argsort()[:n]


class ReplayMethod(Method):
    Config = ReplayConfig

    def draw_replay(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """n detached samples drawn from the replay memory, in the teacher's input space (None or an empty batch
        when it holds nothing yet); ``generator``: a private stream (plots, progress signals)."""
        raise NotImplementedError

    def replay_batch(self, n: int, it: int) -> torch.Tensor | None:
        """The n samples a student step replays: ``draw_replay``, class-balanced when ``replay_balance`` > 1."""
        return self._balanced_draw(n, None)

    def sample_replay(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """n replayed samples as the student sees them (fp32), for plots and progress signals."""
        x = self._balanced_draw(n, generator)
        return None if x is None else x.float()

    def _balanced_draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
        k = self.cfg.replay_balance
        x = self.draw_replay(n * k, generator)
        if k == 1 or x is None or x.shape[0] <= n:
            return x
        with torch.no_grad(), self.precision():
            labels = self.teacher(x).argmax(1)
        return x[class_balanced_indices(labels, n, self.info.num_classes)]

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
        for _ in range(c.generator_steps + (c.generator_warmup if it == 0 else 0)):
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
