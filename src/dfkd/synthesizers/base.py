"""Synthesizers: what produces the batches of synthetic inputs a student learns from.

Three kinds, each registered beside its definition (``@register_synthesizer("name")``):
- ``generator``: a generator network trained step by step on the method's objective (DAFL, DFAD, MB-DFKD,
  PRE-DFKD; ``generator.py``);
- ``pixels``: the inputs themselves are the parameters, optimised from noise on the objective each round
  (DeepInversion / ADI; ``pixels.py``);
- ``noise``: Gaussian noise, the random baseline (``noise.py``).
A ``SyntheticPool`` (``pool.py``) keeps what the rounds produced, so student steps can sample from it (CMI,
Fast-DFKD, the DataFree ADI).

Every synthesizer is built as ``cls(ctx, objective)`` from the method's ``PartContext`` and ``Objective``,
lists what it trains or keeps in ``parts()`` and draws detached batches with ``sample(n, generator=None)``
(normalised input space, in the method's precision, no graph).
"""
from __future__ import annotations

import torch

from ..parts import Part, PartContext
from ..registry import Registry
from ..terms import Objective

SYNTHESIZERS: Registry[type["Synthesizer"]] = Registry("synthesizer")
register_synthesizer = SYNTHESIZERS.register


class Synthesizer:
    def __init__(self, ctx: PartContext, objective: Objective) -> None:
        self.ctx, self.objective = ctx, objective

    def parts(self) -> list[Part]:
        return []

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def close(self) -> None:
        """Detach DDP wrappers (they hold the process group)."""


def top_class_fraction(logits: torch.Tensor) -> torch.Tensor:
    """Share of the batch that the teacher assigns to its most frequent class (1.0: every sample one class).

    The mode-collapse statistic: a healthy synthetic batch spreads over the classes (about 1/K to a few
    times that); a collapsed generator produces one class. Returned as a tensor (no host sync).
    """
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1])
    return counts.max().float() / logits.shape[0]


__all__ = ["SYNTHESIZERS", "register_synthesizer", "Synthesizer", "top_class_fraction"]
