"""Generators that synthesise images in the teacher's normalised input space.

``dcgan``: the DAFL generator (Chen et al., ICCV 2019), also PRE-DFKD's novel generator G and the shape of
its VAE decoder:

    z (B, latent) -> Linear -> (B, 2w, H/4, W/4) -> BN -> up x2 -> conv3x3 2w->2w -> BN -> LeakyReLU(0.2)
      -> up x2 -> conv3x3 2w->w -> BN -> LeakyReLU(0.2) -> conv3x3 w->C -> tanh -> BN(affine=False)

with w = 64 in DAFL/PRE-DFKD (128 and 64 channels). The final affine-free BatchNorm standardises each
channel of the batch, which lands samples in the range of normalised real images whatever the
data set's mean/std. H and W must be divisible by 4.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ..registry import Registry

GENERATORS: Registry[nn.Module] = Registry("generator")


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, out_shape: tuple[int, int, int] = (1, 32, 32), width: int = 64,
                 output: str = "tanh_bn") -> None:
        super().__init__()
        c, h, w = out_shape
        if h % 4 or w % 4:
            raise ValueError(f"generator output H and W must be divisible by 4, got {h}x{w}")
        self.latent_dim, self.out_shape = latent_dim, tuple(out_shape)
        self.init_hw = (h // 4, w // 4)
        self.project = nn.Linear(latent_dim, 2 * width * self.init_hw[0] * self.init_hw[1])
        self.bn0 = nn.BatchNorm2d(2 * width)
        self.block1 = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.BatchNorm2d(2 * width),
                                    nn.LeakyReLU(0.2, inplace=True))
        self.block2 = nn.Sequential(nn.Conv2d(2 * width, width, 3, 1, 1), nn.BatchNorm2d(width),
                                    nn.LeakyReLU(0.2, inplace=True))
        self.to_image = nn.Conv2d(width, c, 3, 1, 1)
        if output not in ("tanh_bn", "linear"):
            raise ValueError(f"output must be 'tanh_bn' or 'linear', got {output!r}")
        # "linear": the raw conv output, for a decoder that must reproduce another generator's samples.
        self.out_act = nn.Sequential(nn.Tanh(), nn.BatchNorm2d(c, affine=False)) if output == "tanh_bn" else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, *self.init_hw)  # (B, 2w, H/4, W/4)
        x = F.interpolate(self.bn0(x), scale_factor=2)  # (B, 2w, H/2, W/2)
        x = F.interpolate(self.block1(x), scale_factor=2)  # (B, 2w, H, W)
        x = self.block2(x)  # (B, w, H, W)
        return self.out_act(self.to_image(x))  # (B, C, H, W)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


@GENERATORS.register("dcgan")
def dcgan(**kw: Any) -> nn.Module:
    return DCGANGenerator(**kw)


def create_generator(name: str, **kw: Any) -> nn.Module:
    return GENERATORS.create(name, **kw)
