"""Adversarial terms: the synthesis *minimises* them, so they reward samples on which the student (scored in
eval mode, its weights untouched) disagrees with the teacher.

    adversarial_l1:  -mean_{b,k} |s_bk - t_bk|                                   (DFAD, Fang et al. 2019)
    adversarial_js:  1 - JS_T(s, t) / ln 2 in [0, 1], per-sample JS of the softmaxes at temperature T
                     (PRE-DFKD, Binici et al. AAAI 2022; scaling: ``losses.bounded_js_divergence``)
"""
from __future__ import annotations

import torch

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
