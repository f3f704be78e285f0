"""BatchNorm-statistics prior (DeepInversion: Yin et al., "Dreaming to Distill", CVPR 2020; the generator
prior of CMI, Fang et al. IJCAI 2021, and Fast-DFKD, Fang et al. AAAI 2022).

A teacher trained with BatchNorm remembers, in each BN layer l, the per-channel mean mu_l and variance
sigma2_l of its training data's features at that layer. Synthetic data that looks like the training data
should reproduce them. For a synthetic batch with features x_l (B, C, H, W) at the input of BN layer l:

    L_bn = sum_l ( || mean_{b,h,w} x_l - mu_l ||_2 + || var_{b,h,w} x_l - sigma2_l ||_2 )

(L2 norms, not squared, summed over layers; variance biased, as BN computes it in training).

With a momentum m > 0 (``bn_momentum``; Fast-DFKD, Fang et al. AAAI 2022, its ``bn_mmt`` = 0.9) the batch's
statistics are matched together with an exponential moving average of the earlier batches':

    L_bn = sum_l ( || (1 - m) mean_l + m EMA(mean_l) - mu_l ||_2 + || (1 - m) var_l + m EMA(var_l) - sigma2_l ||_2 )

and ``remember()`` folds the last recorded statistics into the EMA (EMA <- m EMA + (1 - m) last; the first
batch sets it), once per generator update or per synthesis round. The EMA is state (buffers): checkpointed with
the method. Until the first ``remember()`` the plain statistics are matched.

``BNStatistics`` is an ``nn.Module`` that keeps the forward-hook handles on the teacher's BN layers, so
it can be removed (``remove()``, or use it as a context manager): nothing stays attached to the teacher.
Hooks only compute while ``recording()`` is active, so the teacher's other passes cost nothing extra.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch
from torch import nn

from ..errors import DfkdError
from ..parts import Part
from .base import Passes, Term, register_term

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BN layers with running statistics (the ones the prior can match)."""
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats and m.running_mean is not None]


class BNStatistics(nn.Module):
    def __init__(self, teacher: nn.Module, teacher_name: str = "the teacher", momentum: float = 0.0) -> None:
        super().__init__()
        layers = batchnorm_layers(teacher)
        if not layers:
            raise DfkdError(f"the BatchNorm-statistics prior (w_bn > 0) needs a teacher with BatchNorm layers, and "
                            f"{teacher_name} ({type(teacher).__name__}) has none; set w_bn=0 or use a BN teacher")
        if not 0 <= momentum < 1:
            raise ValueError(f"BN-statistics momentum must be in [0, 1), got {momentum}")
        self.num_layers, self.momentum = len(layers), momentum
        if momentum > 0:  # the EMA of earlier batches' statistics, per layer, and whether it holds any yet
            for i, layer in enumerate(layers):
                self.register_buffer(f"ema_mean_{i}", torch.zeros_like(layer.running_mean, dtype=torch.float32))
                self.register_buffer(f"ema_var_{i}", torch.zeros_like(layer.running_var, dtype=torch.float32))
            self.register_buffer("ema_ready", torch.zeros((), dtype=torch.bool, device=layers[0].running_mean.device))
        self._handles = [layer.register_forward_hook(functools.partial(self._hook, i))
                         for i, layer in enumerate(layers)]
        self._recording = False
        self._terms: list[torch.Tensor] = []
        self._last: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> the last recorded (mean, var)

    def _hook(self, index: int, layer: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor, ...], _out) -> None:
        if not self._recording:
            return
        x = inputs[0].float()  # (B, C, ...) ; bf16 under autocast: statistics in fp32
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        if self.momentum > 0:
            self._last[index] = (mean.detach(), var.detach())
            m = self.momentum
            ema_mean, ema_var = getattr(self, f"ema_mean_{index}"), getattr(self, f"ema_var_{index}")
            # no host sync: before the first remember() the EMA is ignored
            mean = torch.where(self.ema_ready, (1 - m) * mean + m * ema_mean, mean)
            var = torch.where(self.ema_ready, (1 - m) * var + m * ema_var, var)
        self._terms.append(torch.linalg.vector_norm(mean - layer.running_mean)
                           + torch.linalg.vector_norm(var - layer.running_var))

    @torch.no_grad()
    def remember(self) -> None:
        """Fold the last recorded batch statistics into the EMA (no-op without momentum or before any pass)."""
        if self.momentum <= 0 or not self._last:
            return
        m = self.momentum
        for i, (mean, var) in self._last.items():
            for name, new in ((f"ema_mean_{i}", mean), (f"ema_var_{i}", var)):
                ema = getattr(self, name)
                ema.copy_(torch.where(self.ema_ready, m * ema + (1 - m) * new, new))
        self.ema_ready.fill_(True)
        self._last = {}

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
        self._terms, self._last = [], {}

    def __enter__(self) -> "BNStatistics":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


@register_term("bn_statistics")
class BNStatisticsTerm(Term):
    """DeepInversion's BatchNorm-statistics prior ``L_bn`` (module docstring) as an objective term; with
    ``bn_momentum`` > 0, Fast-DFKD's momentum version (its EMA is a part: checkpointed, per rank)."""

    log_name = "bn"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.prior = BNStatistics(ctx.teacher, momentum=ctx.cfg.bn_momentum)

    def recording(self):
        return self.prior.recording()

    def forward(self, p: Passes) -> torch.Tensor:
        return self.prior.loss()

    def after_update(self) -> None:
        self.prior.remember()

    def after_round(self) -> None:
        self.prior.remember()

    def parts(self) -> list[Part]:
        # each rank's own batches' statistics under torchrun
        return [Part("bn_momentum", self.prior, per_rank=True)] if self.prior.momentum > 0 else []

    def close(self) -> None:
        self.prior.remove()


__all__ = ["BNStatistics", "BNStatisticsTerm", "batchnorm_layers"]
