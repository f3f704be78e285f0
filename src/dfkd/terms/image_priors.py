"""Image priors on the synthetic pixels themselves (DeepInversion, Yin et al. CVPR 2020; Mahendran & Vedaldi):
natural images are locally smooth and bounded.

    total_variation:  sum over the 4 neighbour directions d (right, down, two diagonals) of mean |x - shift_d(x)|
                      (the L1 form of zju-vipa/DataFree ``get_image_prior_losses``; on the batch before jitter)
    image_l2:         mean_b ||x_b||_2  (NVlabs/DeepInversion ``loss_l2``; DataFree runs it with weight 0)
    input_statistics: || mean_{b,h,w} x ||_2 + || var_{b,h,w} x - 1 ||_2  (per channel, inside the data set's
                      black frame): DeepInversion's BatchNorm prior applied at the input, with the teacher's
                      input normaliser as the running statistics. Real normalised images have mean 0 and
                      variance 1 per channel when the normaliser holds the training set's statistics (as dfkd's
                      data sets' normalisers do); a teacher without BatchNorm has no other statistics to match.
"""
from __future__ import annotations

import torch

from ..data import zero_border
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


def input_statistics(x: torch.Tensor, border: int = 0) -> torch.Tensor:
    """``||mean x||_2 + ||var x - 1||_2`` over the channels of a normalised batch (B, C, H, W), statistics over
    (B, H, W) inside a frame of ``border`` pixels (biased variance, as in the BatchNorm prior)."""
    if border:
        x = x[:, :, border:-border, border:-border]
    mean = x.mean((0, 2, 3))
    var = x.var((0, 2, 3), unbiased=False)
    return torch.linalg.vector_norm(mean) + torch.linalg.vector_norm(var - 1)


@register_term("input_statistics")
class InputStatistics(Term):
    """Input-statistics prior: the synthetic batch's per-channel pixel mean and variance (after the normaliser)
    match those of real normalised images, 0 and 1 (module docstring). The frame the data set's loader pads
    every image with (MNIST-like: 2 px) is left out, as the normaliser's statistics are those of the unpadded
    images."""

    log_name = "input_stats"

    def forward(self, p: Passes) -> torch.Tensor:
        return input_statistics(_image(p), zero_border(self.ctx.info.name))
