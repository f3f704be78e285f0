"""Batched augmentation in torch (no per-sample Python loop): random crop with zero padding and
horizontal flip (uint8 (B, C, H, W) batches before normalisation, or synthetic batches), and mixup of
synthetic batches."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import rng


@dataclass(frozen=True)
class Augmentation:
    crop_padding: int = 0  # random crop of the original size from the zero-padded image
    hflip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip


def default_augmentation(dataset_name: str) -> Augmentation:
    """Crop+flip for natural images (CIFAR, image folders; crop 8 at Tiny-ImageNet's 64x64); crop only for
    SVHN (a mirrored digit is another glyph); none for digits and MNIST-like data."""
    if dataset_name in ("digits", "mnist", "fashion-mnist"):
        return Augmentation()
    if dataset_name == "svhn":
        return Augmentation(crop_padding=4)
    if dataset_name == "tiny-imagenet":
        return Augmentation(crop_padding=8, hflip=True)
    return Augmentation(crop_padding=4, hflip=True)


def augment_batch(x: torch.Tensor, aug: Augmentation, generator: torch.Generator | None = None) -> torch.Tensor:
    if not aug.active:
        return x
    b, c, h, w = x.shape
    dev = x.device  # draws on the host (``dfkd.rng``), index arithmetic on the batch's device
    if aug.crop_padding > 0:
        p = aug.crop_padding
        padded = F.pad(x, (p, p, p, p))  # (B, C, H+2p, W+2p); zero pad works for uint8
        dy = rng.randint(0, 2 * p + 1, (b,), device=dev, generator=generator)
        dx = rng.randint(0, 2 * p + 1, (b,), device=dev, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (B, 1, 1, W)
        x = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                   rows, cols]
    if aug.hflip:
        flip = rng.rand(b, device=dev, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def mix_batch(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The first ``round(fraction * n)`` samples replaced by lam * x_i + (1 - lam) * x_j (j uniform over the batch,
    lam ~ U(0, 1) per sample); the rest unchanged."""
    k = int(round(fraction * x.shape[0]))
    if k == 0:
        return x
    partner = rng.randint(0, x.shape[0], (k,), device=x.device)
    lam = rng.rand(k, *([1] * (x.dim() - 1)), device=x.device)
    mixed = (lam * x[:k].float() + (1 - lam) * x[partner].float()).to(x.dtype)
    return torch.cat([mixed, x[k:]])


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.25, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Per sample: a random box of ``scale`` x the area and aspect ``ratio`` (log-uniform), resized back to the
    input size with bilinear sampling, then a horizontal flip with p = 0.5 (torchvision/kornia's
    RandomResizedCrop + RandomHorizontalFlip: CMI's local view). Differentiable with respect to ``x``."""
    b, _, h, w = x.shape
    dev = x.device  # draws on the host (``dfkd.rng``) or ``generator``'s device, moved to the batch's device
    area = rng.uniform(b, *scale, device=dev, generator=generator)
    log_r = rng.uniform(b, math.log(ratio[0]), math.log(ratio[1]), device=dev, generator=generator)
    aspect = torch.exp(log_r)
    sw = torch.sqrt(area * aspect).clamp(max=1.0)  # box width and height as fractions of the image
    sh = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (rng.rand(b, device=dev, generator=generator) * 2 - 1) * (1 - sw)  # box centre in [-1, 1] coordinates
    cy = (rng.rand(b, device=dev, generator=generator) * 2 - 1) * (1 - sh)
    flip = rng.rand(b, device=dev, generator=generator) < 0.5 if hflip else torch.zeros(b, dtype=torch.bool, device=dev)
    sign = 1.0 - 2.0 * flip.float()  # -1 mirrors the sampling grid
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sw * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
