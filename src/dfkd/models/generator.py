"""Generators that synthesise images in the teacher's normalised input space, and their registry.

A generator is a ``Generator``: an ``nn.Module`` mapping latents (B, latent_dim) to images (B, C, H, W) in
the teacher's normalised space, with ``sample_latent(n, generator=None)`` drawing the latents it expects.
Builders register beside their definition with ``@register_generator("name")`` and are called as

    builder(latent_dim=..., out_shape=(C, H, W), width=..., info=DatasetInfo, **options)

where ``options`` are the architecture's own settings (config key ``generator_options``); an unknown
option is an error naming the generator.

``dcgan``: the DAFL generator (Chen et al., ICCV 2019), also PRE-DFKD's novel generator G, CMI's and
Fast-DFKD's generator, and the shape of PRE-DFKD's VAE decoder:

    z (B, latent) -> Linear -> (B, 2w, H/4, W/4) -> BN -> up x2 -> conv3x3 2w->2w -> BN -> LeakyReLU(0.2)
      -> up x2 -> conv3x3 2w->w -> BN -> LeakyReLU(0.2) -> conv3x3 w->C -> output

with w = 64 in DAFL/PRE-DFKD/CMI (128 and 64 channels). H and W must be divisible by 4. Outputs:
- ``tanh_bn`` (DAFL, PRE-DFKD): tanh, then an affine-free BatchNorm that standardises each channel of the
  batch (samples land in the range of normalised real images, but are not held inside it);
- ``sigmoid`` (CMI, Fast-DFKD, NAYER): sigmoid gives pixels in [0, 1], then the data set's normaliser
  ``(p - mean) / std``: every sample is a valid image;
- ``linear``: the raw conv output, for a decoder that must reproduce another generator's samples.

Other options: ``spectral_norm`` (wrap every conv in spectral normalisation, Miyato et al. ICLR 2018),
``init_range`` (weights of the convs and the linear layer ~ U(-r, r), biases 0; 0 keeps PyTorch's default
init), ``bn_eps`` (eps of the two BatchNorms after the convs) and ``border`` (with a sigmoid or linear output:
the generator synthesises the inner (H - 2b) x (W - 2b) pixels and surrounds them with b black pixels, pixel 0
in the normaliser's units, as MNIST-like images are zero-padded from 28x28 to the 32x32 input of the LeNet
family; the teacher never saw anything else in that border. A VAE decoder with a linear output draws the same
frame as the generator whose samples it learns).

``pre-dfkd``: the novel generator of the official PRE-DFKD code (kuluhan/PRE-DFKD, networks/generator.py),
the ``dcgan`` shape with its three convs in spectral norm, U(-0.08, 0.08) init and ``BatchNorm2d(c, 0.8)``
after the convs (the second positional argument of BatchNorm2d is eps, so eps = 0.8: a large eps that damps
the normalisation). Same options as ``dcgan``, with those as defaults.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F

from .. import rng
from ..data.info import DatasetInfo
from ..errors import DfkdError
from ..registry import Registry

GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator")
register_generator = GENERATORS.register

OUTPUTS = ("tanh_bn", "sigmoid", "linear")


class Generator(nn.Module):
    """Interface of every generator: ``forward(z)`` -> images and ``sample_latent`` -> z."""

    latent_dim: int

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents z ~ N(0, I) of shape (n, latent_dim) on this generator's device, drawn from ``generator`` or the
        host's global RNG (``dfkd.rng``: the same latents on every device)."""
        return rng.randn(n, self.latent_dim, device=next(self.parameters()).device, generator=generator)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, the data set's normaliser (buffers: they follow the module's device)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class DCGANGenerator(Generator):
    def __init__(self, latent_dim: int = 100, out_shape: tuple[int, int, int] = (1, 32, 32), width: int = 64,
                 output: str = "tanh_bn", mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None, spectral_norm: bool = False, init_range: float = 0.0,
                 bn_eps: float = 1e-5, border: int = 0) -> None:
        super().__init__()
        c, full_h, full_w = out_shape
        h, w = full_h - 2 * border, full_w - 2 * border  # the synthesised part, inside the black border
        if border < 0 or h <= 0 or w <= 0 or h % 4 or w % 4:
            raise ValueError(f"generator output H and W (less twice the border {border}) must be positive and "
                             f"divisible by 4, got {full_h}x{full_w}")
        if border and output == "tanh_bn":
            raise ValueError("a border needs a sigmoid or linear output (black is pixel 0 of the data set's "
                             "normaliser; tanh_bn standardises the batch)")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not (init_range >= 0 and bn_eps > 0):
            raise ValueError(f"init_range must be >= 0 and bn_eps > 0, got {init_range} and {bn_eps}")
        self.latent_dim, self.out_shape, self.border = latent_dim, tuple(out_shape), border
        self.init_hw = (h // 4, w // 4)
        self.project = nn.Linear(latent_dim, 2 * width * self.init_hw[0] * self.init_hw[1])
        self.bn0 = nn.BatchNorm2d(2 * width)
        convs = [nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.Conv2d(2 * width, width, 3, 1, 1),
                 nn.Conv2d(width, c, 3, 1, 1)]
        if init_range > 0:
            for m in (self.project, *convs):
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)
        if spectral_norm:  # after the init: the parametrisation starts from the initialised weight
            convs = [nn.utils.parametrizations.spectral_norm(conv) for conv in convs]
        self.block1 = nn.Sequential(convs[0], nn.BatchNorm2d(2 * width, eps=bn_eps), nn.LeakyReLU(0.2, inplace=True))
        self.block2 = nn.Sequential(convs[1], nn.BatchNorm2d(width, eps=bn_eps), nn.LeakyReLU(0.2, inplace=True))
        self.to_image = convs[2]
        if output == "tanh_bn":
            self.out_act = nn.Sequential(nn.Tanh(), nn.BatchNorm2d(c, affine=False))
        elif output == "sigmoid":
            self.out_act = nn.Sequential(nn.Sigmoid(), Normalize(mean or (0.0,) * c, std or (1.0,) * c))
        else:
            self.out_act = nn.Identity()
        # the frame's colour: pixel 0 through the data set's normaliser (as a sigmoid output normalises its pixels)
        self.frame_normalize = Normalize(mean or (0.0,) * c, std or (1.0,) * c) if border else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, *self.init_hw)  # (B, 2w, H/4, W/4)
        x = F.interpolate(self.bn0(x), scale_factor=2)  # (B, 2w, H/2, W/2)
        x = F.interpolate(self.block1(x), scale_factor=2)  # (B, 2w, H, W)
        x = self.block2(x)  # (B, w, H, W)
        x = self.out_act(self.to_image(x))  # (B, C, H, W), H and W less the border
        if self.border:  # black (pixel 0 in normalised units) all round, as zero-padded real images
            black = self.frame_normalize(torch.zeros(1, x.shape[1], 1, 1, dtype=x.dtype, device=x.device))
            x = F.pad(x - black, (self.border,) * 4) + black
        return x


@register_generator("dcgan")
def dcgan(latent_dim: int, out_shape: tuple[int, int, int], width: int = 64, info: DatasetInfo | None = None,
          output: str = "tanh_bn", spectral_norm: bool = False, init_range: float = 0.0,
          bn_eps: float = 1e-5, border: int = 0) -> Generator:
    """The DAFL/CMI generator; options: output (tanh_bn | sigmoid | linear), spectral_norm, init_range,
    bn_eps, border (module docstring)."""
    mean, std = (info.mean, info.std) if info is not None else (None, None)
    return DCGANGenerator(latent_dim, out_shape, width, output, mean, std, spectral_norm, init_range, bn_eps, border)


@register_generator("pre-dfkd")
def pre_dfkd(latent_dim: int, out_shape: tuple[int, int, int], width: int = 64, info: DatasetInfo | None = None,
             output: str = "tanh_bn", spectral_norm: bool = True, init_range: float = 0.08,
             bn_eps: float = 0.8, border: int = 0) -> Generator:
    """The official PRE-DFKD novel generator: ``dcgan`` with spectral norm, U(-0.08, 0.08) init, BN eps 0.8."""
    return dcgan(latent_dim, out_shape, width, info, output, spectral_norm, init_range, bn_eps, border)


def create_generator(name: str, *, latent_dim: int, out_shape: tuple[int, int, int], width: int = 64,
                     info: DatasetInfo | None = None, **options: Any) -> Generator:
    builder = GENERATORS.get(name)
    try:
        gen = builder(latent_dim=latent_dim, out_shape=tuple(out_shape), width=width, info=info, **options)
    except (TypeError, ValueError) as exc:
        raise DfkdError(f"cannot build generator '{name}' with options {options}: {exc}") from None
    if not isinstance(gen, nn.Module) or not hasattr(gen, "sample_latent"):
        raise DfkdError(f"generator '{name}' must build a Generator (an nn.Module with sample_latent)")
    return gen


def list_generators() -> list[str]:
    return GENERATORS.names()
