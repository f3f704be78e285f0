"""PRE-DFKD: Robust and Resource-Efficient Data-Free Knowledge Distillation by Generative Pseudo Replay
(Binici, Aggarwal, Pham, Leman, Mitra; AAAI 2022, arXiv:2201.03019).

Novel generator G (DAFL generator), minimised each iteration:
    L_G = 1 * CE(T(x), argmax T(x)) + 5 * sum_k pbar_k log10 pbar_k - 0.1 * mean |f_T(x)|
          + w_adv * (1 - JS_3(S(x), T(x)) / ln 2),                      x = G(z), S in eval mode
Student, each of ``student_steps`` steps, on novel samples plus pseudo-replayed ones decoded by the VAE:
    L_S = mean |S(x) - T(x)|,   x = [G(z) ; D(z')],  |D(z')| = |G(z)| / 8
Memory generator: a VAE (``dfkd.replay.vae``) updated on the first ``vae_updates`` student steps of every
iteration with L_VAE = |x_hat - x|_1 + |T(x_hat) - T(x)|_1 + 1e-5 KL on x = [G(z)[:B/2] ; D_old(z'')],
where D_old(z'') (B/8 samples decoded from the VAE before the update, detached) is its self-replay, as in
deep generative replay, so the VAE does not forget either. No synthetic sample is ever stored.

Class-balanced memory sampling (optional, on in the official code): before decoding, the latents z' take
one Adam step (from a fresh optimizer state, i.e. z' -= lr * g / (|g| + 1e-8)) on
    5 * sum_k pbar_k log10 pbar_k + CE(T(D(z')), argmax) + mse(var(z'), 1) + mse(mean(z'), 0).

Fitted replay prior (optional, ``replay_prior: fitted``; ours): z' ~ N(m, diag(v)), the Gaussian the VAE fits
to its aggregate posterior (``replay.vae``), instead of N(0, I), for replay and for the VAE's self-replay; the
nudge's moment terms then pull toward (m, v) instead of (0, 1).

Where we differ from the official code (on purpose): the adversarial JS term is scaled to matter (see
``losses.bounded_js_divergence``); the student scores synthetic samples in eval mode; the VAE is ~25x
smaller (``replay.vae``); the VAE's decoder ends in a linear layer instead of tanh+BN.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..errors import DfkdError
from ..models.train_modes import eval_mode
from ..replay.vae import ReplayVAE, vae_loss
from ..parts import Part
from .base import register_method
from .distill_config import require_non_negative, require_positive
from .replay import ReplayConfig, ReplayMethod


@dataclass
class PREDFKDConfig(ReplayConfig):
    vae_latent_dim: int = 96
    vae_width: int = 16
    lr_vae: float = 5e-4  # PRE-DFKD code: lr_G / 40 (Adam) for encoder and decoder
    vae_updates: int = 4  # PRE-DFKD code: VAE updated on the first 4 of the 10 student steps
    vae_novel_fraction: float = 0.5  # PRE-DFKD code: the VAE learns from the first B/2 novel samples
    vae_self_replay_ratio: float = 0.125  # PRE-DFKD code: plus B/8 samples it decodes itself
    w_vae_pixel: float = 1.0  # PRE-DFKD code
    w_vae_teacher: float = 1.0  # PRE-DFKD code (L1 on teacher logits)
    w_vae_kl: float = 1e-5  # PRE-DFKD code
    replay_nudge: bool = True  # PRE-DFKD code: class-balanced memory sampling
    lr_nudge: float = 0.02  # PRE-DFKD code: lr_G
    replay_prior: str = "standard"  # latents replay decodes: N(0, I) (the paper), or "fitted" (module docstring)
    prior_momentum: float = 0.05  # the fitted prior's moving-average rate per VAE update
    # the VAE's decoder draws the black frame the novel generator draws (generator option ``border``) exactly,
    # instead of learning it like any pixel (``replay.vae``)
    vae_border: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.vae_novel_fraction <= 1:
            raise DfkdError(f"config 'vae_novel_fraction' must be in (0, 1], got {self.vae_novel_fraction}")
        require_positive(self, "vae_latent_dim", "vae_width")
        require_non_negative(self, "lr_vae", "vae_updates", "vae_self_replay_ratio", "w_vae_pixel", "w_vae_teacher",
                             "w_vae_kl", "lr_nudge")
        if self.replay_prior not in ("standard", "fitted"):
            raise DfkdError(f"config 'replay_prior' must be 'standard' or 'fitted', got {self.replay_prior!r}")
        if not 0 < self.prior_momentum <= 1:
            raise DfkdError(f"config 'prior_momentum' must be in (0, 1], got {self.prior_momentum}")


def replay_vae(info, cfg: PREDFKDConfig) -> ReplayVAE:
    """The run's VAE, as its config describes it (the frame: that of the novel generator, when ``vae_border``)."""
    border = int(cfg.generator_options.get("border", 0)) if cfg.vae_border else 0
    return ReplayVAE(info.input_shape, cfg.vae_latent_dim, cfg.vae_width, fitted_prior=cfg.replay_prior == "fitted",
                     border=border, mean=info.mean, std=info.std)


@register_method("pre-dfkd")
class PREDFKD(ReplayMethod):
    Config = PREDFKDConfig
    paper = "Binici et al., Robust and Resource-Efficient DFKD by Generative Pseudo Replay, AAAI 2022"

    def __init__(self, teacher, student, info, cfg: PREDFKDConfig, dist=None, device=None) -> None:
        super().__init__(teacher, student, info, cfg, dist, device)
        self.vae = self.ctx.build(lambda: replay_vae(info, self.cfg)).train()  # configured: the frame is set
        self.opt_vae = torch.optim.Adam(self.vae.parameters(), lr=cfg.lr_vae, foreach=True)
        self.add_part(Part("vae", self.vae, self.opt_vae, "lr_vae", replay=True, log_prefix="vae_"))
        self.vae_train = self.wrap(self.vae)

    def _latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ the VAE's prior (N(0, I) unless fitted), optionally nudged toward confident, class-balanced teacher
        outputs (module docstring)."""
        c = self.cfg
        z = self.vae.sample_prior(n, generator, device=self.ctx.device)
        if not c.replay_nudge or c.lr_nudge == 0:
            return z
        mean, var = self.vae.prior_moments(self.ctx.device)
        z.requires_grad_(True)
        with torch.enable_grad(), eval_mode(self.vae), self.precision():  # callable from no_grad code too
            t = self.teacher(self.vae.decode(z)).float()
            loss = c.w_info_entropy * losses.info_entropy(t) + c.w_one_hot * losses.one_hot(t)
            if n > 1:  # the batch-moment terms; a single latent has no variance (torch.var of one row is NaN)
                loss = loss + F.mse_loss(z.var(0), var) + F.mse_loss(z.mean(0), mean)
            (g,) = torch.autograd.grad(loss, z)  # grads for z only: nothing accumulates in the VAE or teacher
        return (z - c.lr_nudge * g / (g.abs() + 1e-8)).detach()

    @torch.no_grad()
    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        with eval_mode(self.vae), self.precision():
            return self.vae.decode(z)

    def draw_replay(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        return self._decode(self._latents(n, generator))

    def update_memory(self, x_novel: torch.Tensor, it: int, step: int,
                      t_novel: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        c = self.cfg
        if step >= c.vae_updates:
            return {}
        n_novel = max(1, int(c.batch_size * c.vae_novel_fraction))
        x = x_novel[:n_novel]
        n_self = int(round(c.batch_size * c.vae_self_replay_ratio))
        x_self = None
        if n_self > 0 and not (it == 0 and step == 0):  # self-replay once the VAE has learned anything
            x_self = self._decode(self._latents(n_self)).to(x.dtype)
            x = torch.cat([x, x_self])
        with torch.no_grad(), self.precision():
            if t_novel is None:  # the student saw an augmented batch: label the novel samples here
                t_x = self.teacher(x)
            else:  # the student step labelled them already; only the self-replayed samples are new
                parts = [t_novel[:n_novel].float()] + ([self.teacher(x_self).float()] if x_self is not None else [])
                t_x = torch.cat(parts)
        with self.precision():
            x_hat, mu, logvar = self.vae_train(x)
            t_hat = self.teacher(x_hat)  # the teacher is frozen: gradients reach the VAE only
        terms = vae_loss(x.float(), x_hat.float(), t_x.float(), t_hat.float(), mu.float(), logvar.float(),
                         c.w_vae_pixel, c.w_vae_teacher, c.w_vae_kl)
        self.amp.minimize(terms["loss"], [self.opt_vae])
        if self.vae.fitted_prior:
            self.vae.fit_prior(self.dist.average(self.vae.posterior_moments(mu, logvar)), c.prior_momentum)
        return {"vae_loss": terms["loss"].detach(), "vae_pixel": terms["vae_pixel"].detach(),
                "vae_teacher": terms["vae_teacher"].detach()}
