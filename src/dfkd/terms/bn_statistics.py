"""BatchNorm-statistics prior (DeepInversion: Yin et al., "Dreaming to Distill", CVPR 2020; the generator
prior of CMI, Fang et al. IJCAI 2021, and Fast-DFKD, Fang et al. AAAI 2022).

A teacher trained with BatchNorm remembers, in each BN layer l, the per-channel mean mu_l and variance
sigma2_l of its training data's features at that layer. Synthetic data that looks like the training data
should reproduce them. For a synthetic batch with features x_l (B, C, H, W) at the input of BN layer l:

    L_bn = sum_l ( || mean_{b,h,w} x_l - mu_l ||_2 + || var_{b,h,w} x_l - sigma2_l ||_2 )

(L2 norms, not squared, summed over layers; variance biased, as BN computes it in training).

``BNStatistics`` is an ``nn.Module`` that keeps the forward-hook handles on the teacher's BN layers, so
it can be removed (``remove()``, or use it as a context manager): nothing stays attached to the teacher.
Hooks only compute while ``recording()`` is active, so the teacher's other passes cost nothing extra.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ..errors import DfkdError
from .base import Passes, Term, register_term

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BN layers with running statistics (the ones the prior can match)."""
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats and m.running_mean is not None]


class BNStatistics(nn.Module):
    def __init__(self, teacher: nn.Module, teacher_name: str = "the teacher") -> None:
        super().__init__()
        layers = batchnorm_layers(teacher)
        if not layers:
            raise DfkdError(f"the BatchNorm-statistics prior (w_bn > 0) needs a teacher with BatchNorm layers, and "
                            f"{teacher_name} ({type(teacher).__name__}) has none; set w_bn=0 or use a BN teacher")
        self.num_layers = len(layers)
        self._handles = [layer.register_forward_hook(self._hook) for layer in layers]
        self._recording = False
        self._terms: list[torch.Tensor] = []

    def _hook(self, layer: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor, ...], _out) -> None:
        if not self._recording:
            return
        x = inputs[0].float()  # (B, C, ...) ; bf16 under autocast: statistics in fp32
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        self._terms.append(torch.linalg.vector_norm(mean - layer.running_mean)
                           + torch.linalg.vector_norm(var - layer.running_var))

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Collect the statistic mismatch of every teacher forward pass inside this block."""
        self._terms, self._recording = [], True
        try:
            yield
        finally:
            self._recording = False

    def loss(self) -> torch.Tensor:
        """L_bn of the last recorded forward pass (sum over the BN layers)."""
        if not self._terms:
            raise RuntimeError("no teacher forward pass was recorded")
        return torch.stack(self._terms).sum()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._terms = []

    def __enter__(self) -> "BNStatistics":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


@register_term("bn_statistics")
class BNStatisticsTerm(Term):
    """DeepInversion's BatchNorm-statistics prior ``L_bn`` (module docstring) as an objective term."""

    log_name = "bn"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.prior = BNStatistics(ctx.teacher)

    def recording(self):
        return self.prior.recording()

    def forward(self, p: Passes) -> torch.Tensor:
        return self.prior.loss()

    def close(self) -> None:
        self.prior.remove()


__all__ = ["BNStatistics", "BNStatisticsTerm", "batchnorm_layers"]
