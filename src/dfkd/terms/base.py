"""Objective terms: the generator's (or the synthetic pixels') loss, as a weighted list of small parts.

A term is a registered ``nn.Module`` (registration beside its definition, ``@register_term("name")``). It
declares which passes it needs (``needs``: the teacher's penultimate ``"features"``, a ``"student"`` pass in
eval mode), may record something during the teacher's pass (``recording()``: forward hooks, e.g. BN
statistics), and computes its value from the ``Passes`` of one synthesis step. A term with state it trains
or keeps (CMI's projection head and feature memory) lists it in ``parts()``; ``after_update()`` is called by a
generator method after each update it keeps (the contrastive term's memory remembers the step there), and
``after_round()`` by a method that synthesises in rounds, once per round.

A method's objective is a list of (term name, weight) read from its config; terms of weight 0 are not built
and their passes are not run:

    L = sum_i w_i * term_i(passes)          (logged per term as ``g_<log_name>``)
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Collection, Iterator

import torch
from torch import nn

from ..errors import DfkdError
from ..models import logits_and_features
from ..models.train_modes import eval_mode, frozen_params
from ..parts import Part, PartContext
from ..registry import Registry

TERMS: Registry[type["Term"]] = Registry("objective term")
register_term = TERMS.register


@dataclass(eq=False)
class Passes:
    """What one synthesis step computed on a batch (tensors in the precision they were computed in).

    The fp32 views (``t32``, ``f32``, ``s32``) are made once, on first use, and shared by every term, so that
    gradients from several terms meet in fp32 before flowing back through one cast.
    """

    x: torch.Tensor  # (B, C, H, W) the batch the teacher saw
    t_logits: torch.Tensor  # (B, K)
    t_features: torch.Tensor | None = None  # (B, F) the teacher's penultimate features
    s_logits: torch.Tensor | None = None  # (B, K) the student's logits (eval mode, no parameter gradients)
    targets: torch.Tensor | None = None  # (B,) target classes, for syntheses that choose them
    source: torch.Tensor | None = None  # the batch before any view was taken of it (e.g. before jitter/crop)
    _cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def _fp32(self, key: str, t: torch.Tensor | None) -> torch.Tensor:
        if t is None:
            raise RuntimeError(f"this objective did not compute '{key}' (a term forgot to declare it in needs)")
        if key not in self._cache:
            self._cache[key] = t.float()
        return self._cache[key]

    @property
    def t32(self) -> torch.Tensor:
        return self._fp32("teacher logits", self.t_logits)

    @property
    def f32(self) -> torch.Tensor:
        return self._fp32("features", self.t_features)

    @property
    def s32(self) -> torch.Tensor:
        return self._fp32("student", self.s_logits)


class Term(nn.Module):
    """Base class of objective terms (module docstring). Subclasses set ``log_name`` and implement ``forward``."""

    log_name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()  # "features", "student", "targets"

    def __init__(self, ctx: PartContext) -> None:
        super().__init__()
        self.ctx = ctx

    def recording(self) -> contextlib.AbstractContextManager:
        """Around the teacher's pass on the batch (hooks that collect what ``forward`` needs)."""
        return contextlib.nullcontext()

    def forward(self, p: Passes) -> torch.Tensor:
        raise NotImplementedError

    def after_update(self) -> None:
        """Called after a generator method's update on this term's value: the term may remember the step (a
        feature memory). Methods that choose what to keep themselves (CMI's best iterate) do not call it."""

    def after_round(self) -> None:
        """Called once per synthesis round by a method that synthesises in rounds (ADI, CMI, Fast-DFKD), after the
        round's batch is kept (the BN prior's momentum folds in the round's statistics there)."""

    def parts(self) -> list[Part]:
        return []

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers of what the term trains itself (a projection head): zeroed before and stepped after
        the synthesis step's backward, with the synthesis step's own optimizer."""
        return []

    def close(self) -> None:
        """Remove what the term attached (hooks on the teacher)."""


class Objective(nn.Module):
    """``L = sum_i w_i term_i``: the terms of positive weight, in the order the method lists them."""

    def __init__(self, entries: list[tuple[str, float]], ctx: PartContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.weights: list[float] = []
        terms = []
        for name, weight in entries:
            if weight > 0:
                terms.append(TERMS.get(name)(ctx))
                self.weights.append(float(weight))
        self.terms = nn.ModuleList(terms)
        self.needs = frozenset().union(*(t.needs for t in terms)) if terms else frozenset()

    def __bool__(self) -> bool:
        return len(self.terms) > 0

    def term(self, log_name: str) -> Term | None:
        return next((t for t in self.terms if t.log_name == log_name), None)

    def _on(self, off: Collection[str]) -> list[tuple[Term, float]]:
        """(term, weight) of the terms not switched off."""
        return [(t, w) for t, w in zip(self.terms, self.weights) if t.log_name not in off]

    @contextlib.contextmanager
    def recording(self, off: Collection[str] = ()) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for t, _ in self._on(off):
                stack.enter_context(t.recording())
            yield

    def passes(self, x: torch.Tensor, targets: torch.Tensor | None = None,
               source: torch.Tensor | None = None, off: Collection[str] = ()) -> Passes:
        """The teacher's (and, when a term needs it, the student's) pass on ``x``, in the caller's precision.
        Terms in ``off`` (see ``forward``) are not served: what only they need is not computed."""
        needs = frozenset().union(*(t.needs for t, _ in self._on(off))) if off else self.needs
        if "targets" in needs and targets is None:
            raise DfkdError("an objective term needs target classes, which this synthesizer does not choose")
        teacher, student = self.ctx.teacher, self.ctx.student
        with self.recording(off):
            if "features" in needs:
                t_logits, t_feats = logits_and_features(teacher, x)
            else:
                t_logits, t_feats = teacher(x), None
        s_logits = None
        if "student" in needs:
            with eval_mode(student), frozen_params(student):
                s_logits = student(x)
        return Passes(x=x, t_logits=t_logits, t_features=t_feats, s_logits=s_logits, targets=targets, source=source)

    def forward(self, p: Passes, off: Collection[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted sum, {g_<log_name>: value}); computed outside autocast, in fp32. Terms whose ``log_name`` is in
        ``off`` are left out of this step (not computed: a term a schedule switches on later)."""
        on = self._on(off)
        values = {f"g_{t.log_name}": t(p) for t, _ in on}
        loss = sum(w * v for (_, w), v in zip(on, values.values()))
        return loss, values

    def after_update(self) -> None:
        for t in self.terms:
            t.after_update()

    def after_round(self) -> None:
        for t in self.terms:
            t.after_round()

    def parts(self) -> list[Part]:
        return [part for t in self.terms for part in t.parts()]

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for t in self.terms for o in t.optimizers()]

    def close(self) -> None:
        for t in self.terms:
            t.close()


def term_settings(cfg: Any, *keys: str) -> list[Any]:
    """A term's own settings from the method's config, with an error naming what is missing."""
    missing = [k for k in keys if not hasattr(cfg, k)]
    if missing:
        raise DfkdError(f"this objective term needs config keys {', '.join(missing)}, which "
                        f"{type(cfg).__name__} does not have")
    return [getattr(cfg, k) for k in keys]


__all__ = ["TERMS", "register_term", "Term", "Passes", "Objective", "term_settings"]
