"""The bare reference loops of ``dfkd bench --speed``: plain PyTorch, with nothing from dfkd's machinery.

Each function transcribes one method's iteration from its docstring (same networks, batch sizes, passes and
optimizer steps) as a newcomer would write it: default optimizers, no logging, no checks, no checkpoints.
``fast`` applies the precision (the autocast dfkd chooses for the device: ``dfkd.device.choose_precision``) and
memory-format (channels_last) settings dfkd uses (on any device: the loops take a ``device``), so that
``dfkd / bare_same`` isolates the framework's overhead; ``compiled`` puts every forward pass through
``torch.compile``. Only the network classes (and the replay VAE module) are shared with dfkd.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..device import choose_precision
from ..precision import precision_context


def _compile(*modules) -> None:
    """Compile the forward passes the bare loops call (``__call__``, and the feature/decoder entry points)."""
    for m in modules:
        m.compile()
        for name in ("forward_features", "decode"):
            if hasattr(m, name):
                setattr(m, name, torch.compile(getattr(m, name)))


def _bare_setup(info, teacher, student, cfg, fast: bool, device: torch.device):
    """Networks and optimizers for a bare loop on ``device``; ``fast`` applies dfkd's precision/memory-format
    settings."""
    from ..models.generator import create_generator

    fmt = torch.channels_last if (fast and cfg.channels_last) else torch.contiguous_format
    gen = create_generator(cfg.generator, latent_dim=cfg.latent_dim, out_shape=info.input_shape,
                           width=cfg.generator_width, info=info, **cfg.generator_options
                           ).to(device=device, memory_format=fmt).train()
    teacher = teacher.to(device=device, memory_format=fmt).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = student.to(device=device, memory_format=fmt).train()
    if cfg.student_optimizer == "adam":
        opt_s = torch.optim.Adam(student.parameters(), lr=cfg.lr_student, weight_decay=cfg.weight_decay)
    else:
        opt_s = torch.optim.SGD(student.parameters(), lr=cfg.lr_student, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_generator, betas=(cfg.generator_beta1, 0.999))
    precision = choose_precision(device, fast and cfg.bf16, cfg.amp_dtype)
    ac = lambda: precision_context(precision, device)  # noqa: E731
    return gen, teacher, student, opt_s, opt_g, ac, choose_precision(device, fast and cfg.student_bf16, cfg.amp_dtype)


def _set_cosine_lr(opt, cfg, it: int) -> None:
    for group in opt.param_groups:
        group["lr"] = 0.5 * cfg.lr_student * (1 + math.cos(math.pi * it / cfg.iterations))


def _student_l1_step(x, teacher, student, opt, precision: str) -> torch.Tensor:
    """One student update: L1 between student and teacher logits on detached samples x, under ``precision``
    (bf16/fp16/fp32); returns the teacher's logits."""
    if precision == "fp32":
        x = x.float()
    with torch.no_grad(), precision_context(precision, x.device):
        t = teacher(x)
    with precision_context(precision, x.device):
        s = student(x)
    loss = (s.float() - t.float()).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return t


@contextlib.contextmanager
def _scoring(student):
    """The student scores samples for the generator: eval mode, no parameter gradients."""
    student.eval()
    for p in student.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in student.parameters():
            p.requires_grad_(True)
        student.train()


def _js(a, b, temperature):
    log_p, log_q = F.log_softmax(a / temperature, 1), F.log_softmax(b / temperature, 1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), 0) - math.log(2.0)
    return (0.5 * ((log_p.exp() * (log_p - log_m)).sum(1) + (log_q.exp() * (log_q - log_m)).sum(1))).mean()


def _entropy_prior(t):
    p = F.softmax(t, 1).mean(0)
    return (p * torch.log10(p.clamp_min(1e-12))).sum()


def bare_dfad(info, teacher, student, cfg, fast: bool, compiled: bool = False,
              device: torch.device = torch.device("cpu")) -> Callable[[int], None]:
    gen, teacher, student, opt_s, opt_g, ac, student_precision = _bare_setup(info, teacher, student, cfg, fast, device)
    if compiled:
        _compile(gen, teacher, student)

    def iteration(it: int) -> None:
        _set_cosine_lr(opt_s, cfg, it)
        for _ in range(cfg.student_steps):
            with torch.no_grad(), ac():
                x = gen(torch.randn(cfg.batch_size, cfg.latent_dim, device=device))
            _student_l1_step(x, teacher, student, opt_s, student_precision)
        with _scoring(student):
            with ac():
                x = gen(torch.randn(cfg.batch_size, cfg.latent_dim, device=device))
                t, s = teacher(x), student(x)
            loss = -(s.float() - t.float()).abs().mean()
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()

    iteration.modules = {"generator": gen, "student": student}  # for the test that it matches the method
    return iteration


def bare_pre_dfkd(info, teacher, student, cfg, fast: bool, compiled: bool = False,
                  device: torch.device = torch.device("cpu")) -> Callable[[int], None]:
    from ..replay.vae import ReplayVAE

    gen, teacher, student, opt_s, opt_g, ac, student_precision = _bare_setup(info, teacher, student, cfg, fast, device)
    fmt = torch.channels_last if (fast and cfg.channels_last) else torch.contiguous_format
    vae = ReplayVAE(info.input_shape, cfg.vae_latent_dim, cfg.vae_width).to(device=device,
                                                                             memory_format=fmt).train()
    opt_v = torch.optim.Adam(vae.parameters(), lr=cfg.lr_vae)
    if compiled:
        _compile(gen, teacher, student, vae)
    n_replay = int(round(cfg.batch_size * cfg.replay_ratio))
    n_self = int(round(cfg.batch_size * cfg.vae_self_replay_ratio))
    n_vae = max(1, int(cfg.batch_size * cfg.vae_novel_fraction))

    def nudged_latents(n):
        z = torch.randn(n, cfg.vae_latent_dim, device=device, requires_grad=True)
        vae.eval()
        with torch.enable_grad(), ac():
            t = teacher(vae.decode(z)).float()
            loss = (cfg.w_info_entropy * _entropy_prior(t) + cfg.w_one_hot * F.cross_entropy(t, t.argmax(1))
                    + F.mse_loss(z.var(0), torch.ones(cfg.vae_latent_dim, device=device))
                    + F.mse_loss(z.mean(0), torch.zeros(cfg.vae_latent_dim, device=device)))
            (g,) = torch.autograd.grad(loss, z)
        vae.train()
        return (z - cfg.lr_nudge * g / (g.abs() + 1e-8)).detach()

    def decode(z):
        vae.eval()
        with torch.no_grad(), ac():
            x = vae.decode(z)
        vae.train()
        return x

    def iteration(it: int) -> None:
        _set_cosine_lr(opt_s, cfg, it)
        # generator: DAFL priors + bounded JS adversarial term
        with _scoring(student):
            with ac():
                x = gen(torch.randn(cfg.batch_size, cfg.latent_dim, device=device))
                f = teacher.forward_features(x)
                t = teacher.forward_head(f)
                s = student(x)
            t = t.float()
            loss = (cfg.w_one_hot * F.cross_entropy(t, t.argmax(1)) + cfg.w_info_entropy * _entropy_prior(t)
                    - cfg.w_activation * f.float().abs().mean()
                    + cfg.w_adversarial * (1 - _js(s.float(), t, cfg.js_temperature) / math.log(2.0)))
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
        # student steps on novel + replayed samples, VAE updates on the first vae_updates of them
        for step in range(cfg.student_steps):
            with torch.no_grad(), ac():
                x_new = gen(torch.randn(cfg.batch_size, cfg.latent_dim, device=device))
            x = torch.cat([x_new, decode(nudged_latents(n_replay)).to(x_new.dtype)])
            t_all = _student_l1_step(x, teacher, student, opt_s, student_precision)
            if step >= cfg.vae_updates:
                continue
            xv, t_x = x_new[:n_vae], t_all[:n_vae].float()  # the student step labelled the novel samples
            if n_self > 0 and not (it == 0 and step == 0):
                x_self = decode(nudged_latents(n_self)).to(xv.dtype)
                xv = torch.cat([xv, x_self])
                with torch.no_grad(), ac():
                    t_x = torch.cat([t_x, teacher(x_self).float()])
            with ac():
                x_hat, mu, logvar = vae(xv)
                t_hat = teacher(x_hat)
            mu, logvar = mu.float(), logvar.float()
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
            loss = (cfg.w_vae_pixel * (x_hat.float() - xv.float()).abs().mean()
                    + cfg.w_vae_teacher * (t_hat.float() - t_x.float()).abs().mean() + cfg.w_vae_kl * kl)
            opt_v.zero_grad()
            loss.backward()
            opt_v.step()

    iteration.modules = {"generator": gen, "student": student, "vae": vae}
    return iteration


BARE_LOOPS = {"dfad": bare_dfad, "pre-dfkd": bare_pre_dfkd}
