"""MB-DFKD: memory-bank replay (Binici, Pham, Mitra, Leman; WACV 2022, "Preventing Catastrophic
Forgetting and Distribution Mismatch in Knowledge Distillation via Synthetic Data").

Identical to PRE-DFKD (same generator objective, same student loss, same replay ratio) except that the
replayed samples are *stored* synthetic samples: every ``push_every`` iterations the first
``memory_batch_size`` novel samples of the iteration are pushed into a ring buffer of
``memory_batches x memory_batch_size`` samples (10 x 128 as in the LRA re-implementation), and each
student step replays ``B * replay_ratio`` of them drawn uniformly:
    L_S = mean |S(x) - T(x)|,   x = [G(z) ; bank samples]
The stored samples are memory (and data-like content kept around): ``replay_memory_bytes`` counts them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..replay.memory_bank import MemoryBank
from .distill_config import require_positive
from ..parts import Part
from .base import register_method
from .replay import ReplayConfig, ReplayMethod


@dataclass
class MBDFKDConfig(ReplayConfig):
    memory_batches: int = 10  # LRA re-implementation of MB-DFKD
    memory_batch_size: int = 128  # LRA re-implementation of MB-DFKD
    push_every: int = 25  # iterations between pushes ("every few epochs"; sized for short CPU budgets)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "memory_batches", "memory_batch_size", "push_every")


@register_method("mb-dfkd")
class MBDFKD(ReplayMethod):
    Config = MBDFKDConfig
    paper = "Binici et al., Preventing Catastrophic Forgetting ... via Synthetic Data, WACV 2022"

    def __init__(self, teacher, student, info, cfg: MBDFKDConfig, dist=None, device=None) -> None:
        super().__init__(teacher, student, info, cfg, dist, device)
        self.bank = self.ctx.build(lambda: MemoryBank(cfg.memory_batches * cfg.memory_batch_size, info.input_shape),
                                   memory_format=False)
        # each rank stores and replays its own samples under torchrun
        self.add_part(Part("bank", self.bank, per_rank=True, replay=True))

    def draw_replay(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        return self.bank.sample(n, generator)

    def update_memory(self, x_novel: torch.Tensor, it: int, step: int,
                      t_novel: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if step == 0 and it % self.cfg.push_every == 0:
            self.bank.push(x_novel[: self.cfg.memory_batch_size].float())
        return {}
