"""What the pool-based methods share (ADI, CMI, Fast-DFKD): each iteration synthesises one
round, the round's batch joins a ``SyntheticPool`` (8-bit images + the teacher's logits on exactly those
images), and the student takes ``student_steps`` steps on batches drawn from the pool, augmented as the data
set's teachers are trained (the teacher labels the augmented batch), as zju-vipa/DataFree trains them:

    x_round -> pool;   student_steps x  L_S(S(A(x)), T(A(x))),  x ~ pool,  A = the data set's crop/flip

The pool's bytes are replay memory (``Part(replay=True)``); under torchrun each rank keeps its own pool.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..data.augment import default_augmentation
from ..errors import DfkdError
from ..parts import Part
from ..synthesizers import PoolSettings, SyntheticPool
from .base import Method
from .distill_config import DistillConfig, require_positive


@dataclass
class PoolConfig(DistillConfig, PoolSettings):
    augment_auto: bool = True  # the data set's teacher augmentation on pool batches (DataFree: crop 4 + flip)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "pool_size")
        if self.student_batch_reuse != 1:
            raise DfkdError("config 'student_batch_reuse' does not apply to a pool method: every student batch is "
                            "drawn from the pool")


class LowestLoss:
    """The iterate of a synthesis round with the lowest loss (DataFree keeps ``best_inputs``), tracked on the
    device without a host sync: ``offer(loss, x, ...)`` after each step, ``values`` at the end (a value offered as
    None stays None)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.full((), float("inf"), device=device)
        self.values: tuple[torch.Tensor | None, ...] | None = None

    @torch.no_grad()
    def offer(self, loss: torch.Tensor, *values: torch.Tensor | None) -> None:
        better = loss.detach() < self.loss
        self.loss = torch.where(better, loss.detach(), self.loss)
        if self.values is None:
            self.values = tuple(None if v is None else v.detach().clone() for v in values)
        else:
            self.values = tuple(None if v is None else torch.where(better, v.detach(), old)
                                for v, old in zip(values, self.values))


class PoolMethod(Method):
    Config = PoolConfig
    # config keys of views the synthesis mirrors; switched off with the augmentation's flip where a mirror
    # changes the class (digits, MNIST-like data)
    mirror_keys: tuple[str, ...] = ()
    conditional_synthesis = False  # each round chooses its targets itself

    @classmethod
    def configure(cls, cfg: PoolConfig, teacher, info) -> PoolConfig:
        """Pool batches augmented like the data set's teachers, and no mirrored synthesis views where a mirror
        changes the class, unless augmentation is set explicitly (idempotent)."""
        if cfg.augment_auto and cfg.augment_crop == 0 and not cfg.augment_flip:
            aug = default_augmentation(info.name)
            mirrors = {k: getattr(cfg, k) and aug.hflip for k in cls.mirror_keys}
            cfg = dataclasses.replace(cfg, augment_crop=aug.crop_padding, augment_flip=aug.hflip, **mirrors)
        return cfg

    def __init__(self, teacher, student, info, cfg: PoolConfig, dist=None, device=None) -> None:
        super().__init__(teacher, student, info, cfg, dist, device)
        self.pool = self.ctx.build(lambda: SyntheticPool(self.cfg.pool_size, info), memory_format=False)
        self.add_part(Part("pool", self.pool, per_rank=True, replay=True))

    def keep_round(self, x: torch.Tensor) -> None:
        """Add a round's batch ``x`` (normalised) to the pool, with the teacher's logits on what the pool stores."""
        x = self.pool.quantize(x).contiguous(memory_format=self.memory_format)
        with torch.no_grad(), self.precision():
            self.pool.add(x, self.teacher(x))

    def learn_from_pool(self, x: torch.Tensor) -> torch.Tensor:
        """``keep_round(x)``, then ``student_steps`` student steps on pool batches; returns the mean student loss."""
        c = self.cfg
        self.keep_round(x)
        losses = []
        for _ in range(c.student_steps):
            xs, ts = self.pool.sample(c.batch_size)
            losses.append(self.student_step(xs.contiguous(memory_format=self.memory_format), ts))
        return torch.stack(losses).mean() if losses else torch.zeros((), device=self.ctx.device)

    def sample_novel(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The last round's images (what the synthesis produced most recently; a fresh round would cost a whole
        synthesis, so the progress signal's ``agree_novel`` is measured on images the student has trained on)."""
        if len(self.pool) == 0:
            return super().sample_novel(n, generator)
        return self.pool.newest(min(n, self.cfg.batch_size))

    def sample_replay(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Pool images, as the student draws them (before augmentation)."""
        return self.pool.sample(n, generator)[0] if len(self.pool) else None
