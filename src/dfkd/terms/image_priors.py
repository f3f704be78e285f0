"""Image priors on the synthetic pixels themselves (DeepInversion, Yin et al. CVPR 2020; Mahendran & Vedaldi):
natural images are locally smooth and bounded.

    total_variation:  sum over the 4 neighbour directions d (right, down, two diagonals) of mean |x - shift_d(x)|
                      (the L1 form of zju-vipa/DataFree ``get_image_prior_losses``; on the batch before jitter)
    image_l2:         mean_b ||x_b||_2  (NVlabs/DeepInversion ``loss_l2``; DataFree runs it with weight 0)
"""
from __future__ import annotations

import torch

from .base import Passes, Term, register_term


def total_variation(x: torch.Tensor) -> torch.Tensor:
    d1 = x[:, :, :, :-1] - x[:, :, :, 1:]
    d2 = x[:, :, :-1, :] - x[:, :, 1:, :]
    d3 = x[:, :, 1:, :-1] - x[:, :, :-1, 1:]
    d4 = x[:, :, :-1, :-1] - x[:, :, 1:, 1:]
    return d1.abs().mean() + d2.abs().mean() + d3.abs().mean() + d4.abs().mean()


def _image(p: Passes) -> torch.Tensor:
    return (p.source if p.source is not None else p.x).float()


@register_term("total_variation")
class TotalVariation(Term):
    """Total-variation prior (L1, 4 directions) on the batch before any view (DeepInversion; DataFree weight 1e-3)."""

    log_name = "tv"

    def forward(self, p: Passes) -> torch.Tensor:
        return total_variation(_image(p))


@register_term("image_l2")
class ImageL2(Term):
    """L2 prior ``mean_b ||x_b||_2`` on the synthetic images (DeepInversion; weight 0 in DataFree's runs)."""

    log_name = "l2"

    def forward(self, p: Passes) -> torch.Tensor:
        return _image(p).flatten(1).norm(dim=1).mean()
