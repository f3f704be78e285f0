"""PRE-DFKD's memory generator: a small VAE that learns the distribution of all synthetic samples seen so
far (Binici et al., AAAI 2022, Sec. 4.2), so replay needs no stored sample.

Encoder E: conv3x3/2 C->w, conv3x3/2 w->2w, conv3x3/2 2w->2w (BN + LeakyReLU(0.2) each), average-pooled
to 4x4, Linear -> (mu, log sigma^2) of size L. Decoder D: the DAFL generator body of width w with a linear
output layer (no tanh/BN: it must reproduce the novel generator's standardised samples exactly). When the novel
generator draws the data set's black frame (``border``, MNIST-like data), the decoder draws the inner part and
the same exact frame (``border``, with the data set's normaliser ``mean``/``std`` for the frame's value), so
replayed samples keep the frame every real image has instead of a blurred approximation of it.

Default size (w = 16, L = 96) at 1x32x32: ~0.33M parameters = ~1.3 MB in fp32, inside the paper's claimed
2.1 MB; the official code's VAE is ~49 MiB. ``ReplayVAE.nbytes()`` is what ``replay_memory_bytes`` reports.

Objective, customised for synthetic data (a reconstruction must keep the teacher's response, because
synthetic samples lose their teacher label under tiny pixel changes):
    L_VAE = w_pix * mean |x_hat - x| + w_T * mean |T(x_hat) - T(x)| + w_KL * mean_b KL(q(z|x) || N(0, I))
    KL = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2),   (w_pix, w_T, w_KL) = (1, 1, 1e-5) as the code.

Fitted prior (optional, ``fitted_prior=True``; ours): with so small a KL weight the posterior sits far from
N(0, I), and decodes of N(0, I) are not what the VAE learned (BENCHMARKS.md, "The VAE replays a skewed
distribution"). The VAE then also keeps a diagonal Gaussian N(m, diag(v)) moment-matched to its aggregate
posterior, as an exponential moving average over its updates (ex-post density estimation, Ghosh et al.,
ICLR 2020, with one Gaussian):
    m <- (1 - a) m + a mean_b mu_b,   v <- (1 - a) v + a (var_b mu_b + mean_b sigma_b^2),   from m = 0, v = 1
Two L-vectors of buffers: nothing that could be called a stored sample.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import rng
from ..models.generator import DCGANGenerator
from ..parts import module_bytes


class Encoder(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], latent_dim: int, width: int) -> None:
        super().__init__()
        c = in_shape[0]

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]

        self.body = nn.Sequential(*down(c, width), *down(width, 2 * width), *down(2 * width, 2 * width),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten())  # (B, 2w*16)
        self.head = nn.Linear(2 * width * 16, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)  # (B, L) each
        return mu, logvar.clamp(-30.0, 20.0)  # keeps exp(logvar) finite early in training


class ReplayVAE(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], latent_dim: int = 96, width: int = 16,
                 fitted_prior: bool = False, border: int = 0, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = Encoder(in_shape, latent_dim, width)
        self.decoder = DCGANGenerator(latent_dim, in_shape, width, output="linear", mean=mean, std=std, border=border)
        self.fitted_prior = fitted_prior
        if fitted_prior:  # N(prior_mean, diag(prior_var)), fitted by ``fit_prior``; N(0, I) until then
            self.register_buffer("prior_mean", torch.zeros(latent_dim))
            self.register_buffer("prior_var", torch.ones(latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction (B, C, H, W), mu and logvar (B, L), with the reparameterisation trick."""
        mu, logvar = self.encoder(x)
        z = mu + rng.randn(*mu.shape, dtype=mu.dtype, device=mu.device) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def prior_moments(self, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, variance) of the prior replay draws from: N(0, I), or the fitted Gaussian."""
        if self.fitted_prior:
            return self.prior_mean, self.prior_var
        return (torch.zeros(self.latent_dim, device=device), torch.ones(self.latent_dim, device=device))

    def sample_prior(self, n: int, generator: torch.Generator | None = None,
                     device: torch.device | None = None) -> torch.Tensor:
        """n latents from the prior (host-drawn noise: the same draws on every device)."""
        mean, var = self.prior_moments(device)
        z = rng.randn(n, self.latent_dim, device=mean.device, generator=generator)
        return z if not self.fitted_prior else mean + var.sqrt() * z

    @staticmethod
    def posterior_moments(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """(2, L): mean and variance of the aggregate posterior of a batch, (mean_b mu, var_b mu + mean_b sigma^2)."""
        mu, var = mu.detach().float(), logvar.detach().float().exp()
        return torch.stack([mu.mean(0), mu.var(0, unbiased=False) + var.mean(0)])

    @torch.no_grad()
    def fit_prior(self, moments: torch.Tensor, momentum: float) -> None:
        """One moving-average step of the fitted prior toward ``moments`` ((2, L), ``posterior_moments``)."""
        self.prior_mean.lerp_(moments[0].to(self.prior_mean.dtype), momentum)
        self.prior_var.lerp_(moments[1].to(self.prior_var.dtype), momentum)

    def nbytes(self) -> int:
        """Bytes of everything the VAE keeps: parameters and buffers (BN running statistics)."""
        return module_bytes(self)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """mean_b KL(N(mu_b, sigma_b^2) || N(0, I)) = mean_b -1/2 sum_j (1 + logvar - mu^2 - exp(logvar))."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def vae_loss(x: torch.Tensor, x_hat: torch.Tensor, t_x: torch.Tensor, t_x_hat: torch.Tensor, mu: torch.Tensor,
             logvar: torch.Tensor, w_pixel: float = 1.0, w_teacher: float = 1.0,
             w_kl: float = 1e-5) -> dict[str, torch.Tensor]:
    """The PRE-DFKD VAE objective (module docstring); returns its terms and their weighted sum ``loss``."""
    pixel = (x_hat - x).abs().mean()
    teacher = (t_x_hat - t_x).abs().mean()
    kl = kl_to_standard_normal(mu, logvar)
    return {"vae_pixel": pixel, "vae_teacher": teacher, "vae_kl": kl,
            "loss": w_pixel * pixel + w_teacher * teacher + w_kl * kl}
