"""CMI's contrastive term (Fang et al., "Contrastive Model Inversion for Data-Free Knowledge Distillation",
IJCAI 2021; zju-vipa/DataFree ``datafree/synthesis/contrastive.py``): samples should differ from each other
and from every sample synthesised before, as the teacher sees them.

Instance features f(x) (B, d): the per-sample spatial mean of the input of every teacher BatchNorm layer,
concatenated. Two views of each synthetic image: the *global* view (the batch the objective's teacher pass
saw) and a *local* view (random resized crop, scale [0.25, 1], + flip, of the image before any view; a second
teacher pass). A projection head h (Linear d->d, ReLU, Linear d->head_dim, L2-normalised; its own Adam at
``lr_generator``, kept across rounds) maps features to an embedding. With a memory of the raw [local | global]
features of earlier rounds' batches (a ring buffer of ``contrastive_bank_size`` rows; ``contrastive_negatives``
random rows drawn per step), L = [current; memory] local rows, G = the same global rows:

    logits = h(L) h(G)^T / tau   (rows: (B + N) x (B + N); G detached),   target of row i: i
    L_cr = mean_{i <= B} CE(logits_i, i) + mean_{i > B} CE(logits_i, i)   (one mean while the memory is empty)

so each instance's local view must find its own global view among all current and remembered instances.
Gradients reach the images only through the current local features. Settings (``DistillConfig``'s
``contrastive_*``): tau = 0.1, head_dim = 256, 4,096 negatives (DataFree's CIFAR-10 scripts); the memory has
40,960 rows in CMI (DataFree's), which keeps the features of each round's kept batch.

In a generator method (``w_contrastive`` > 0 with DAFL, DFAD, MB-DFKD, PRE-DFKD(+); ours) the memory is empty by
default (``contrastive_bank_size`` 0): the term contrasts the B instances of each batch with each other only, so
a generator whose batch-level priors (the BN prior) are met by B look-alike samples pays for it, and nothing
synthesised is kept across steps. With a memory, each generator update's features join it (``after_update``).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .. import rng
from ..data.augment import random_resized_crop
from ..errors import DfkdError
from ..parts import Part, PartContext
from .base import Passes, Term, register_term, term_settings
from .bn_statistics import batchnorm_layers


class FeatureBank(nn.Module):
    """A ring buffer of feature rows (buffers, so it is checkpointed with the run); grows up to ``capacity``."""

    def __init__(self, capacity: int, dim: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("rows", torch.zeros(0, dim))  # (filled, dim); follows the module's device
        self.register_buffer("head", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return self.rows.shape[0]

    @torch.no_grad()
    def push(self, f: torch.Tensor) -> None:
        if self.capacity == 0:  # no memory: contrast within the batch only
            return
        f = f.detach().float().to(self.rows.device)[-self.capacity:]
        if len(self) < self.capacity:
            room = self.capacity - len(self)
            self.rows = torch.cat([self.rows, f[:room]])
            f = f[room:]
            if len(self) == self.capacity:
                self.head.fill_(0)
        if f.shape[0]:
            idx = (int(self.head) + torch.arange(f.shape[0], device=self.rows.device)) % self.capacity
            self.rows[idx] = f
            self.head.fill_((int(self.head) + f.shape[0]) % self.capacity)

    def sample(self, n: int) -> torch.Tensor:
        if len(self) <= n:
            return self.rows
        return self.rows[rng.randperm(len(self), device=self.rows.device)[:n]]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rows = state_dict.get(prefix + "rows")
        if rows is not None:
            self.rows = torch.zeros_like(rows, device=self.rows.device)  # the saved bank may be fuller than this one
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ProjectionHead(nn.Module):
    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, out_dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(f), dim=1)


@register_term("contrastive")
class Contrastive(Term):
    """CMI's contrastive term over instance features of two views and a memory of earlier ones (module docstring)."""

    log_name = "contrastive"

    def __init__(self, ctx: PartContext) -> None:
        super().__init__(ctx)
        self.tau, head_dim, bank_size, self.negatives = term_settings(
            ctx.cfg, "contrastive_temperature", "contrastive_head_dim", "contrastive_bank_size",
            "contrastive_negatives")
        layers = batchnorm_layers(ctx.teacher)
        if not layers:
            raise DfkdError(f"the contrastive term (CMI) takes its instance features at the teacher's BatchNorm "
                            f"layers, and the teacher ({type(ctx.teacher).__name__}) has none; use a BN teacher")
        self._means: list[torch.Tensor] = []
        self._recording = False
        self._handles = [layer.register_forward_hook(self._hook) for layer in layers]
        dim = sum(layer.num_features for layer in layers)
        self.head = ctx.build(lambda: ProjectionHead(dim, head_dim))
        self.head_optimizer = torch.optim.Adam(self.head.parameters(), lr=ctx.cfg.lr_generator, foreach=True)
        self.bank = ctx.build(lambda: FeatureBank(bank_size, 2 * dim), memory_format=False)
        self.last_features: torch.Tensor | None = None  # [local | global] of the last step, detached (B, 2d)
        self._global: torch.Tensor | None = None

    def _hook(self, _layer, inputs, _out) -> None:
        if self._recording:
            x = inputs[0]
            self._means.append(x.float().mean(dim=tuple(range(2, x.dim()))))  # (B, C)

    @contextlib.contextmanager
    def _record(self) -> Iterator[list[torch.Tensor]]:
        self._means, self._recording = [], True
        try:
            yield self._means
        finally:
            self._recording = False

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        with self._record() as means:
            yield
        self._global = torch.cat(means, dim=1) if means else None  # (B, d)

    def forward(self, p: Passes) -> torch.Tensor:
        if self._global is None:
            raise RuntimeError("the contrastive term saw no recorded teacher pass")
        source = p.source if p.source is not None else p.x
        local_view = random_resized_crop(source.float()).to(source.dtype)
        with self._record() as means, self.ctx.precision():
            self.ctx.teacher(local_view.contiguous(memory_format=self.ctx.memory_format))
        local, glob = torch.cat(means, dim=1), self._global  # (B, d) each
        self.last_features = torch.cat([local, glob], dim=1).detach()
        cached = self.bank.sample(self.negatives).to(local.device)  # (N, 2d)
        c_local, c_global = cached.chunk(2, dim=1)
        proj = self.head(torch.cat([local, c_local, glob, c_global]))
        p_local, p_global = proj.chunk(2, dim=0)  # (B + N, h) each
        logits = p_local @ p_global.detach().T / self.tau
        ce = F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device), reduction="none")
        b = local.shape[0]
        return ce[:b].mean() + ce[b:].mean() if cached.shape[0] else ce.mean()

    def remember(self, features: torch.Tensor) -> None:
        """Push a round's kept [local | global] features into the memory (and drop the step's leftovers)."""
        self.bank.push(features)
        self.last_features = self._global = None

    def after_update(self) -> None:
        """A generator method's update is kept: its batch's features join the memory (none when it has 0 rows)."""
        if self.last_features is not None:
            self.remember(self.last_features)

    def parts(self) -> list[Part]:
        # Both learn from each rank's own syntheses under torchrun: per rank, as the synthesis itself.
        return [Part("contrastive_head", self.head, self.head_optimizer, "lr_generator", per_rank=True),
                Part("contrastive_bank", self.bank, per_rank=True)]

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.head_optimizer]

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
