"""Adversarial terms: the synthesis *minimises* them, so they reward samples on which the student (scored in
eval mode, its weights untouched) disagrees with the teacher.

    adversarial_l1:  -mean_{b,k} |s_bk - t_bk|                                   (DFAD, Fang et al. 2019)
    adversarial_js:  1 - JS_T(s, t) / ln 2 in [0, 1], per-sample JS of the softmaxes at temperature T
                     (PRE-DFKD, Binici et al. AAAI 2022; scaling: ``losses.bounded_js_divergence``)
    competition:     1 - clamp(JS_3^c(s, t), 0, 1), JS^c the clamped JS of DeepInversion's code
                     (ADI's adaptive competition, Yin et al. CVPR 2020)
    adversarial_kl_masked: -mean_b m_b KL(t_b || s_b), m_b = [argmax s_b = argmax t_b]
                     (CMI, Fang et al. IJCAI 2021; Fast-DFKD: only samples the student still gets right)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from .base import Passes, Term, register_term


@register_term("adversarial_l1")
class AdversarialL1(Term):
    """DFAD's adversarial term: ``-mean |S(x) - T(x)|`` on logits."""

    log_name = "adversarial"
    needs = frozenset({"student"})

    def forward(self, p: Passes) -> torch.Tensor:
        return losses.adv_l1(p.s32, p.t32)


@register_term("adversarial_js")
class AdversarialJS(Term):
    """PRE-DFKD's adversarial term: ``1 - JS_T(S(x), T(x)) / ln 2`` at ``js_temperature`` (3 in its code)."""

    log_name = "adversarial"
    needs = frozenset({"student"})

    def forward(self, p: Passes) -> torch.Tensor:
        return losses.bounded_js_divergence(p.s32, p.t32, self.ctx.cfg.js_temperature)


def clamped_js(s_logits: torch.Tensor, t_logits: torch.Tensor, temperature: float = 3.0) -> torch.Tensor:
    """DeepInversion's / DataFree's ``jsdiv``: P, Q the softmaxes at T, M = (P + Q) / 2, each clamped to
    [0.01, 0.99]; JS = 1/2 KL(M || P) + 1/2 KL(M || Q) with ``F.kl_div``'s argument order, batch mean."""
    p = F.softmax(s_logits / temperature, dim=1)
    q = F.softmax(t_logits / temperature, dim=1)
    m = (0.5 * (p + q)).clamp(0.01, 0.99)
    p, q = p.clamp(0.01, 0.99), q.clamp(0.01, 0.99)
    return 0.5 * F.kl_div(p.log(), m, reduction="batchmean") + 0.5 * F.kl_div(q.log(), m, reduction="batchmean")


@register_term("competition")
class Competition(Term):
    """ADI's adaptive competition: ``1 - clamp(JS_3(S(x), T(x)), 0, 1)`` with DeepInversion's clamped JS
    (NVlabs/DeepInversion ``cig_scale`` term; DataFree writes it as ``-JS``, the same gradient)."""

    log_name = "competition"
    needs = frozenset({"student"})

    def forward(self, p: Passes) -> torch.Tensor:
        return 1.0 - clamped_js(p.s32, p.t32, 3.0).clamp(0.0, 1.0)


@register_term("adversarial_kl_masked")
class AdversarialKLMasked(Term):
    """CMI's / Fast-DFKD's adversarial term: ``-mean_b [argmax S = argmax T]_b KL(T(x)_b || S(x)_b)`` at T = 1
    (zju-vipa/DataFree ``contrastive.py``): pushes samples the student still agrees on toward disagreement."""

    log_name = "adversarial"
    needs = frozenset({"student"})

    def forward(self, p: Passes) -> torch.Tensor:
        s, t = p.s32, p.t32
        mask = (s.argmax(1) == t.argmax(1)).float()
        kl = F.kl_div(F.log_softmax(s, dim=1), F.softmax(t, dim=1), reduction="none").sum(1)  # (B,)
        return -(kl * mask).mean()
