"""DAFL's priors on the teacher's response (Chen et al., "Data-Free Learning of Student Networks", ICCV 2019):
synthetic samples should look, to the teacher, like its training data did.

    one_hot:      mean_b CE(t_b, argmax_k t_bk)                      confident predictions
    class_ce:     mean_b CE(t_b, y_b), y chosen by the synthesizer       (DeepInversion, CMI: random targets)
    info_entropy: sum_k pbar_k log10 pbar_k,  pbar = mean_b softmax(t_b)   classes balanced over the batch
    activation:   -mean |f_b|,  f the teacher's penultimate features       strong feature activations
                  (or the output of the module named by ``activation_layer``)

and a soft-target variant of the one-hot prior that places samples between a class and its nearest one:

    boundary:     mean_b CE(t_b, (1 - l_b) e_{c1(b)} + l_b e_{c2(b)}),   c1, c2 the teacher's top two classes of
                  sample b, l_b = boundary_mix * b / (B - 1) spread over the batch (l = 0: the one-hot prior)

(after ZSKD, Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019, whose soft targets mix
classes the teacher finds similar, so that the student sees where the teacher's class boundaries lie.)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .. import losses
from ..errors import DfkdError
from .base import Passes, Term, register_term, term_settings


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
    """DAFL activation prior: ``-mean |f_T(x)|`` (DAFL weight 0.1) on the teacher's penultimate features, or on
    the output of the teacher module named by ``activation_layer`` (a name from ``teacher.named_modules()``; DAFL's
    LeNet-5 reads its 120 conv3 features, ``features.9`` in ours, where the penultimate ones are fc1's 84)."""

    log_name = "activation"
    needs = frozenset({"features"})

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        (layer_name,) = term_settings(ctx.cfg, "activation_layer")
        self._handle = None
        self._recording = False
        self._output: torch.Tensor | None = None  # the module's output in the last recorded teacher pass
        if layer_name:
            modules = dict(ctx.teacher.named_modules())
            if layer_name not in modules:
                names = [n for n in modules if n]
                shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                raise DfkdError(f"activation_layer={layer_name!r} is not a module of the teacher "
                                f"({type(ctx.teacher).__name__}: {shown})")
            self.needs = frozenset()  # the hook supplies the features; no penultimate pass needed
            self._handle = modules[layer_name].register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, out) -> None:
        if not self._recording:
            return
        if not isinstance(out, torch.Tensor):
            raise DfkdError(f"activation_layer={self.ctx.cfg.activation_layer!r} returns {type(out).__name__}, "
                            "not a tensor")
        self._output = out

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        if self._handle is None:
            yield
            return
        self._output, self._recording = None, True
        try:
            yield
        finally:
            self._recording = False

    def forward(self, p: Passes) -> torch.Tensor:
        if self._handle is None:
            return losses.activation(p.f32)
        if self._output is None:
            raise RuntimeError("activation_layer: no teacher forward pass was recorded")
        return losses.activation(self._output.float())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


@register_term("class_ce")
class ClassCE(Term):
    """Cross-entropy toward the class each sample is synthesised for: ``CE(T(x), y)``, y chosen by the synthesizer
    (DeepInversion's and CMI's ``oh`` term: uniform random targets, sorted; DataFree weight 1)."""

    log_name = "class_ce"
    needs = frozenset({"targets"})

    def forward(self, p: Passes) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(p.t32, p.targets)


def boundary(teacher_logits: torch.Tensor, max_mix: float) -> torch.Tensor:
    """``mean_b CE(t_b, (1 - l_b) e_top1 + l_b e_top2)`` with ``l_b`` rising linearly from 0 (first sample) to
    ``max_mix`` (last): a batch spans each sample's class centre to its boundary with the teacher's runner-up
    class. Deterministic in the batch order (the latents are random), so a run's randomness is unchanged."""
    logits = teacher_logits.float()
    top2 = logits.detach().topk(2, dim=1).indices  # (B, 2)
    mix = torch.linspace(0, max_mix, logits.shape[0], device=logits.device).unsqueeze(1)  # (B, 1)
    target = torch.zeros_like(logits).scatter_(1, top2, torch.cat([1 - mix, mix], 1))
    return torch.nn.functional.cross_entropy(logits, target)


@register_term("boundary")
class Boundary(Term):
    """Class-boundary prior (module docstring): soft targets between each sample's top two teacher classes, mixed
    up to ``boundary_mix``. Meant in place of the one-hot prior (``w_one_hot=0``), whose confident samples sit at
    the class centres where the student learns little about the boundaries it gets wrong."""

    log_name = "boundary"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        (self.max_mix,) = term_settings(ctx.cfg, "boundary_mix")

    def forward(self, p: Passes) -> torch.Tensor:
        return boundary(p.t32, self.max_mix)
