"""What every distillation method shares: its parts (student, generator, optimizers) and the
generator objective, so that a method only writes down where its science differs. The shared settings
are ``DistillConfig`` (``distill_config.py``).

One *iteration* of every method = ``generator_steps`` generator updates + ``student_steps`` student updates
(+ the replay update of the replay methods). The shared loop (``dfkd.engine.loop``) calls
``Method.iteration(it)`` and logs the scalars it returns.

Conventions the official PRE-DFKD code breaks and we keep:
- the teacher is frozen (``requires_grad=False``, eval mode): it never accumulates gradients;
- the student is in eval mode while it only scores synthetic samples for the generator, so its BatchNorm
  running statistics see only what it is trained on;
- student batches are synthesised under ``no_grad`` (no generator graph is kept for them);
- no forward pass is computed twice and no scalar is copied to the host inside an iteration.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
from torch import nn

from .. import losses
from ..data.augment import Augmentation, augment_batch, mix_batch
from ..data.info import DatasetInfo
from ..distributed import DistContext, wrap_ddp
from ..errors import DfkdError
from ..precision import precision_context
from ..models import logits_and_features
from ..models.generator import create_generator
from ..models.train_modes import eval_mode, freeze, frozen_params
from ..priors import BNStatistics
from ..schedules import cosine_lr, set_lr
from .distill_config import DistillConfig


def top_class_fraction(logits: torch.Tensor) -> torch.Tensor:
    """Share of the batch that the teacher assigns to its most frequent class (1.0: every sample one class).

    The mode-collapse statistic: a healthy synthetic batch spreads over the classes (about 1/K to a few
    times that); a collapsed generator produces one class. Returned as a tensor (no host sync).
    """
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1])
    return counts.max().float() / logits.shape[0]


class Method:
    """Base class: owns the student, a novel-sample generator and their optimizers."""

    name = "base"
    Config = DistillConfig
    paper = ""
    # optimizer name -> the config key of its base learning rate (subclasses add theirs)
    lr_keys: dict[str, str] = {"student": "lr_student", "generator": "lr_generator"}
    # False: the method synthesises without a trained generator (none is built, checkpointed or optimised)
    has_generator = True

    def __init__(self, teacher: nn.Module, student: nn.Module, info: DatasetInfo, cfg: DistillConfig,
                 dist: DistContext | None = None) -> None:
        self.cfg, self.info = cfg, info
        self.dist = dist or DistContext()
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.teacher = freeze(teacher).to(memory_format=self.memory_format)
        self.student = student.to(memory_format=self.memory_format).train()
        self.opt_student = self._student_optimizer(self.student.parameters())
        self.generator: nn.Module | None = None
        self.opt_generator: torch.optim.Optimizer | None = None
        if self.has_generator:
            self.generator = create_generator(cfg.generator, latent_dim=cfg.latent_dim, out_shape=info.input_shape,
                                              width=cfg.generator_width).to(memory_format=self.memory_format).train()
            self.opt_generator = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_generator,
                                                  betas=(cfg.generator_beta1, 0.999), foreach=True)
        # Per-optimizer factor on the configured learning rate; the loop halves one after a non-finite rollback.
        self.lr_scale: dict[str, float] = {}
        # Hooks on the teacher's BN layers, removed by close() (the loop calls it when the run ends).
        self.bn_prior = BNStatistics(self.teacher) if cfg.w_bn > 0 else None
        # The passes that train a part go through these (DDP under torchrun: gradients are averaged over
        # ranks); passes that only score or sample use the plain modules.
        self.student_train = self.wrap(self.student)
        self.generator_train = self.wrap(self.generator) if self.has_generator else None
        self.augmentation = Augmentation(crop_padding=cfg.augment_crop, hflip=cfg.augment_flip)
        self.generator_ema = None
        if cfg.ema_generator > 0 and self.has_generator:
            self.generator_ema = freeze(copy.deepcopy(self.generator)).train()  # train mode: batch statistics

    def wrap(self, module: nn.Module) -> nn.Module:
        return wrap_ddp(module, self.dist, self.cfg.sync_bn)

    def close(self) -> None:
        """Detach what this method attached: BN-statistics hooks on the teacher, and the DDP wrappers (they hold
        the process group, which must outlive them)."""
        if self.bn_prior is not None:
            self.bn_prior.remove()
        for attr, value in list(vars(self).items()):
            if isinstance(value, nn.parallel.DistributedDataParallel):
                setattr(self, attr, value.module)

    # -- what the loop needs -------------------------------------------------------------------------
    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """Trainable parts, checkpointed by name (the teacher is frozen and not part of the state)."""
        parts = {"student": self.student, "generator": self.generator, "generator_ema": self.generator_ema}
        return {k: m for k, m in parts.items() if m is not None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"student": self.opt_student, "generator": self.opt_generator}
        return {k: o for k, o in opts.items() if o is not None}

    def state_dict(self) -> dict[str, Any]:
        return {"modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "lr_scale": dict(self.lr_scale)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        self.lr_scale = dict(state.get("lr_scale", {}))

    def replay_memory_bytes(self) -> int:
        """Bytes kept across iterations only for replay (VAE parameters and buffers, stored samples)."""
        return 0

    def replay_optimizer_bytes(self) -> int:
        return 0

    def sample_novel(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n fresh synthetic samples (normalised space, fp32), as the student sees them."""
        return self.synthesize(n, generator).float()

    # -- shared steps --------------------------------------------------------------------------------
    def precision(self):
        return precision_context(self.cfg.bf16)

    def student_precision(self):
        """The student step's precision: bf16 only with both ``bf16`` and ``bf16_student``."""
        return precision_context(self.cfg.student_bf16)

    def set_learning_rates(self, it: int) -> None:
        """Every optimizer's lr for iteration ``it``: configured lr x ``lr_scale`` (x the student schedule)."""
        c = self.cfg
        for name, opt in self.optimizers().items():
            lr = getattr(c, self.lr_keys[name]) * self.lr_scale.get(name, 1.0)
            if name == "student" and c.schedule == "cosine":
                lr = cosine_lr(it, c.iterations, lr, c.warmup_iterations)
            set_lr(opt, lr)

    def _student_optimizer(self, params) -> torch.optim.Optimizer:
        c = self.cfg
        if c.student_optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr_student, weight_decay=c.weight_decay, foreach=True)
        return torch.optim.SGD(params, lr=c.lr_student, momentum=c.momentum, weight_decay=c.weight_decay,
                               foreach=True)

    def student_loss(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        if self.cfg.student_loss == "kl":
            return losses.kd_kl(s_logits, t_logits, self.cfg.kd_temperature)
        return losses.logits_l1(s_logits, t_logits)

    @torch.no_grad()
    def synthesize(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A detached novel batch (generator in train mode: its BatchNorms standardise each batch); with an
        EMA generator, its last ``round(n * ema_fraction)`` samples come from the EMA copy."""
        z = self.generator.sample_latent(n, generator)  # (n, latent)
        with self.precision():
            if self.generator_ema is None:
                return self.generator(z)
            n_ema = int(round(n * self.cfg.ema_fraction))
            parts = [g(zs) for g, zs in ((self.generator, z[: n - n_ema]), (self.generator_ema, z[n - n_ema:]))
                     if zs.shape[0] > 0]
            return torch.cat(parts) if len(parts) > 1 else parts[0]

    @torch.no_grad()
    def update_ema_generator(self) -> None:
        """ema <- m * ema + (1 - m) * generator (weights); BatchNorm buffers are copied."""
        m = self.cfg.ema_generator
        torch._foreach_lerp_(list(self.generator_ema.parameters()), list(self.generator.parameters()), 1.0 - m)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    def student_step(self, x: torch.Tensor, t_logits: torch.Tensor | None = None) -> torch.Tensor:
        """One student update on detached samples ``x`` (teacher logits computed here unless given; with
        ``augment_crop``/``augment_flip`` the batch is augmented first and the teacher labels what the student sees)."""
        if not self.cfg.student_bf16:
            x = x.float()  # bf16 samples from the generator/VAE; the fp32 step needs fp32 inputs (format kept)
        if self.augmentation.active:
            x, t_logits = augment_batch(x, self.augmentation).contiguous(memory_format=self.memory_format), None
        if self.cfg.augment_mixup > 0:
            x, t_logits = mix_batch(x, self.cfg.augment_mixup).contiguous(memory_format=self.memory_format), None
        if t_logits is None:
            with torch.no_grad(), self.student_precision():
                t_logits = self.teacher(x)
        with self.student_precision():
            s_logits = self.student_train(x)
        loss = self.student_loss(s_logits.float(), t_logits.float())
        self.opt_student.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_student.step()
        return loss.detach()

    def generator_step(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """One generator update with the configured objective.

        Returns (loss terms, the batch it generated (detached), the teacher's logits on it (detached)),
        so a method may reuse the batch for a student step without another teacher pass (as DAFL does).
        """
        c = self.cfg
        bn_recording = self.bn_prior.recording() if self.bn_prior is not None else contextlib.nullcontext()
        with self.precision():
            x = self.generator_train(self.generator.sample_latent(c.batch_size))  # (B, C, H, W)
            with bn_recording:
                if c.w_activation > 0:
                    t_logits, t_feats = logits_and_features(self.teacher, x)
                else:
                    t_logits, t_feats = self.teacher(x), None
            s_logits = None
            if c.w_adversarial > 0:
                with eval_mode(self.student), frozen_params(self.student):
                    s_logits = self.student(x)
        t32 = t_logits.float()
        terms: dict[str, torch.Tensor] = {}
        if c.w_one_hot > 0:
            terms["g_one_hot"] = losses.one_hot(t32)
        if c.w_info_entropy > 0:
            terms["g_info_entropy"] = losses.info_entropy(t32)
        if c.w_activation > 0:
            terms["g_activation"] = losses.activation(t_feats.float())
        if self.bn_prior is not None:
            terms["g_bn"] = self.bn_prior.loss()
        if s_logits is not None:
            adv = (losses.bounded_js_divergence(s_logits.float(), t32, c.js_temperature) if c.adversarial_loss == "js"
                   else losses.adv_l1(s_logits.float(), t32))
            terms["g_adversarial"] = adv
        weights = {"g_one_hot": c.w_one_hot, "g_info_entropy": c.w_info_entropy, "g_activation": c.w_activation,
                   "g_adversarial": c.w_adversarial, "g_bn": c.w_bn}
        if not terms:
            raise DfkdError(f"method '{self.name}' has a generator but every generator loss weight is 0")
        loss = sum(weights[k] * v for k, v in terms.items())
        self.opt_generator.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_generator.step()
        if self.generator_ema is not None:
            self.update_ema_generator()
        out = {k: v.detach() for k, v in terms.items()}
        out["g_loss"] = loss.detach()
        out["top_class_frac"] = top_class_fraction(t32.detach())
        return out, x.detach(), t_logits.detach()
