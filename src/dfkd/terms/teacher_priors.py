"""DAFL's priors on the teacher's response (Chen et al., "Data-Free Learning of Student Networks", ICCV 2019):
synthetic samples should look, to the teacher, like its training data did.

    one_hot:      mean_b CE(t_b, argmax_k t_bk)                      confident predictions
    class_ce:     mean_b CE(t_b, y_b), y chosen by the synthesizer       (DeepInversion, CMI: random targets)
    info_entropy: sum_k pbar_k log10 pbar_k,  pbar = mean_b softmax(t_b)   classes balanced over the batch
    activation:   -mean |f_b|,  f the teacher's penultimate features       strong feature activations
"""
from __future__ import annotations

import torch

from .. import losses
from .base import Passes, Term, register_term


@register_term("one_hot")
class OneHot(Term):
    """DAFL one-hot prior: ``CE(T(x), argmax T(x))`` (DAFL weight 1)."""

    log_name = "one_hot"

    def forward(self, p: Passes) -> torch.Tensor:
        return losses.one_hot(p.t32)


@register_term("info_entropy")
class InfoEntropy(Term):
    """DAFL information-entropy prior: ``sum_k pbar_k log10 pbar_k`` (DAFL weight 5; log10 as its code)."""

    log_name = "info_entropy"

    def forward(self, p: Passes) -> torch.Tensor:
        return losses.info_entropy(p.t32)


@register_term("activation")
class Activation(Term):
    """DAFL activation prior: ``-mean |f_T(x)|`` on the teacher's penultimate features (DAFL weight 0.1)."""

    log_name = "activation"
    needs = frozenset({"features"})

    def forward(self, p: Passes) -> torch.Tensor:
        return losses.activation(p.f32)


@register_term("class_ce")
class ClassCE(Term):
    """Cross-entropy toward the class each sample is synthesised for: ``CE(T(x), y)``, y chosen by the synthesizer
    (DeepInversion's and CMI's ``oh`` term: uniform random targets, sorted; DataFree weight 1)."""

    log_name = "class_ce"
    needs = frozenset({"targets"})

    def forward(self, p: Passes) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(p.t32, p.targets)
