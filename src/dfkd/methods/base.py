"""What every distillation method shares, so that a method only writes down where its science differs.

A method is declared from parts:
- a **synthesizer** (``synthesizer = "generator" | "pixels" | "noise"``, see ``dfkd.synthesizers``) that makes
  the synthetic batches;
- a **generator objective**: a list of (objective term, weight) read from the method's config
  (``generator_objective``; terms in ``dfkd.terms``, weight 0 = not built, its passes not run);
- its **parts table** (``self.parts``, ``dfkd.parts.Part``): student, generator, replay memory, ... with their
  optimizers and learning-rate keys. Checkpoints, rollback, rank checks, learning rates and
  ``replay_memory_bytes`` read the table, never a part's name.
The shared settings are ``DistillConfig`` (``distill_config.py``); a method registers itself with
``@register_method("name")`` in its own file.

One *iteration* of every method = its synthesis step(s) + ``student_steps`` student updates (+ the replay
update of the replay methods). The shared loop (``dfkd.engine.loop``) calls ``Method.iteration(it)`` and logs
the scalars it returns.

Conventions the official PRE-DFKD code breaks and we keep:
- the teacher is frozen (``requires_grad=False``, eval mode): it never accumulates gradients;
- the student is in eval mode while it only scores synthetic samples for the generator, so its BatchNorm
  running statistics see only what it is trained on;
- student batches are synthesised under ``no_grad`` (no generator graph is kept for them);
- no forward pass is computed twice and no scalar is copied to the host inside an iteration.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

import torch
from torch import nn

from .. import losses
from ..data.augment import Augmentation, augment_batch, mix_batch
from ..data.info import DatasetInfo
from ..device import choose_precision
from ..distributed import DistContext, wrap_ddp
from ..errors import DfkdError
from ..models.train_modes import ema_update, freeze
from ..parts import Part, PartContext, module_bytes, module_device, optimizer_state_bytes
from ..precision import Precision
from ..registry import Registry
from ..schedules import cosine_lr, set_lr
from ..synthesizers import SYNTHESIZERS
from ..terms import Objective
from .distill_config import GENERATOR_WEIGHTS, DistillConfig

METHODS: Registry[type["Method"]] = Registry("method")


def register_method(name: str):
    """Class decorator: register a ``Method`` subclass under ``name`` (and set its ``name``)."""
    def decorator(cls: type["Method"]) -> type["Method"]:
        cls.name = name
        return METHODS.register(name)(cls)

    return decorator


class Method:
    """Base class: owns the student, the synthesizer and the parts table."""

    name = "base"
    Config = DistillConfig
    paper = ""
    synthesizer = "generator"  # the registered synthesizer that makes novel batches
    conditional_synthesis = True  # accepts class_conditional (a generator trained step by step)
    # the shared objective weights that ``generator_objective`` reads (others set > 0 are refused)
    objective_weights: tuple[str, ...] = GENERATOR_WEIGHTS

    @classmethod
    def configure(cls, cfg: DistillConfig, teacher: nn.Module, info: DatasetInfo) -> DistillConfig:
        """The config this method runs with for this teacher and data set (settings chosen automatically, such as
        a prior that needs BatchNorm layers). Called by the loop before the config is saved, so what a run saves
        is what it ran with; must be idempotent."""
        return cfg

    @classmethod
    def check_objective_weights(cls, cfg: DistillConfig) -> None:
        """Refuse a shared objective weight set > 0 that this method's objective does not read."""
        unread = [k for k in GENERATOR_WEIGHTS if k not in cls.objective_weights and getattr(cfg, k, 0) > 0]
        if unread:
            raise DfkdError(f"'{cls.name}' does not use {', '.join(unread)} (its objective's weights: "
                            f"{', '.join(cls.objective_weights) or 'none'}); set {'them' if len(unread) > 1 else 'it'} "
                            "to 0")

    def generator_objective(self) -> list[tuple[str, float]]:
        """(objective term, weight) in the order the terms are summed; weight 0 drops a term."""
        c = self.cfg
        return [("one_hot", c.w_one_hot), ("info_entropy", c.w_info_entropy), ("activation", c.w_activation),
                ("bn_statistics", c.w_bn), ("class_ce", c.w_class), (f"adversarial_{c.adversarial_loss}", c.w_adversarial),
                ("total_variation", c.w_tv), ("contrastive", c.w_contrastive),
                ("input_statistics", c.w_input_stats), ("boundary", c.w_boundary)]

    def __init__(self, teacher: nn.Module, student: nn.Module, info: DatasetInfo, cfg: DistillConfig,
                 dist: DistContext | None = None, device: torch.device | str | None = None) -> None:
        """``device``: where the run computes (``dfkd.device.resolve_device``); None: where the teacher is. The
        teacher and student are moved there; every part is built on the host (seeded) and moved there too."""
        cfg = self.configure(cfg, teacher, info)
        self.check_objective_weights(cfg)
        if cfg.class_conditional and not self.conditional_synthesis:
            raise DfkdError(f"class_conditional is for methods that train a generator step by step; '{self.name}' "
                            "chooses its samples' classes itself or has no generator")
        self.cfg, self.info = cfg, info
        self.dist = dist or DistContext()
        self.device = torch.device(device) if device is not None else module_device(teacher)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        # The synthesis passes' precision and the student step's (bf16_student), each with its own fp16 scaler
        self.amp = Precision(choose_precision(self.device, cfg.bf16, cfg.amp_dtype), self.device)
        self.amp_student = Precision(choose_precision(self.device, cfg.student_bf16, cfg.amp_dtype), self.device)
        self.teacher = freeze(teacher).to(device=self.device, memory_format=self.memory_format)
        self.student = student.to(device=self.device, memory_format=self.memory_format).train()
        self.parts: dict[str, Part] = {}
        self.add_part(Part("student", self.student, self._student_optimizer(self.student.parameters()),
                           "lr_student", scheduled=True, log_prefix="s_"))
        # Weight average of the student (``student_ema``): evaluated and saved instead of the trained weights
        self.student_ema = freeze(copy.deepcopy(self.student)) if cfg.student_ema > 0 else None
        if self.student_ema is not None:
            self.add_part(Part("student_ema", self.student_ema))
        # Per-part factor on the configured learning rate; the loop halves one after a non-finite rollback.
        self.lr_scale: dict[str, float] = {}
        # The passes that train a part go through DDP wrappers under torchrun (gradients averaged over ranks);
        # passes that only score or sample use the plain modules.
        self.student_train = self.wrap(self.student)
        self.ctx = PartContext(self.teacher, self.student, info, cfg, self.memory_format, self.amp, self.wrap)
        self.objective = Objective(self.generator_objective(), self.ctx)
        if cfg.bn_momentum > 0 and self.objective.term("bn") is None:
            raise DfkdError(f"bn_momentum={cfg.bn_momentum} is a setting of the BatchNorm-statistics prior, which this "
                            f"'{self.name}' run does not use (w_bn is 0); set bn_momentum=0 or w_bn > 0")
        self.synth = SYNTHESIZERS.get(self.synthesizer)(self.ctx, self.objective)
        for part in self.synth.parts():
            self.add_part(part)
        for part in self.objective.parts():
            self.add_part(part)
        self.augmentation = Augmentation(crop_padding=cfg.augment_crop, hflip=cfg.augment_flip)

    # -- the parts table -----------------------------------------------------------------------------
    def add_part(self, part: Part) -> Part:
        if part.name in self.parts:
            raise ValueError(f"method '{self.name}' declares part '{part.name}' twice")
        self.parts[part.name] = part
        return part

    def wrap(self, module: nn.Module) -> nn.Module:
        return wrap_ddp(module, self.dist, self.cfg.sync_bn)

    @property
    def output_student(self) -> nn.Module:
        """The student a user gets: the weight average with ``student_ema`` > 0, else the trained student."""
        return self.student_ema if self.student_ema is not None else self.student

    @property
    def opt_student(self) -> torch.optim.Optimizer:
        return self.parts["student"].optimizer

    @property
    def generator(self) -> nn.Module | None:
        part = self.parts.get("generator")
        return part.module if part is not None else None

    @property
    def opt_generator(self) -> torch.optim.Optimizer | None:
        part = self.parts.get("generator")
        return part.optimizer if part is not None else None

    def close(self) -> None:
        """Detach what this method attached: hooks on the teacher (objective terms), and the DDP wrappers (they
        hold the process group, which must outlive them)."""
        self.objective.close()
        self.synth.close()
        for attr, value in list(vars(self).items()):
            if isinstance(value, nn.parallel.DistributedDataParallel):
                setattr(self, attr, value.module)

    # -- what the loop needs -------------------------------------------------------------------------
    def iteration(self, it: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """Every part's module, checkpointed by name (the teacher is frozen and not part of the state)."""
        return {name: p.module for name, p in self.parts.items()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {name: p.optimizer for name, p in self.parts.items() if p.optimizer is not None}

    def shared_modules(self) -> dict[str, nn.Module]:
        """The modules that are identical on every rank under torchrun (what the rank check compares)."""
        return {name: p.module for name, p in self.parts.items() if not p.per_rank}

    def state_dict(self) -> dict[str, Any]:
        """Every part's module and optimizer state, the lr scales and the fp16 loss scales (tensors on the run's
        device; ``save_run_state`` writes them as CPU tensors)."""
        return {"modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "lr_scale": dict(self.lr_scale),
                "grad_scalers": {"amp": self.amp.state_dict(), "amp_student": self.amp_student.state_dict()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output, from any device (module and optimizer states follow their parameters)."""
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        self.lr_scale = dict(state.get("lr_scale", {}))
        scalers = state.get("grad_scalers", {})
        self.amp.load_state_dict(scalers.get("amp", {}))
        self.amp_student.load_state_dict(scalers.get("amp_student", {}))

    def replay_memory_bytes(self) -> int:
        """Bytes kept across iterations only for replay (VAE parameters and buffers, stored samples)."""
        return sum(module_bytes(p.module) for p in self.parts.values() if p.replay)

    def replay_optimizer_bytes(self) -> int:
        return sum(optimizer_state_bytes(p.optimizer) for p in self.parts.values() if p.replay)

    def owner_of(self, log_key: str) -> str | None:
        """The part whose loss a logged scalar is (by the parts' ``log_prefix``), or None."""
        return next((name for name, p in self.parts.items() if p.log_prefix and log_key.startswith(p.log_prefix)),
                    None)

    def sample_novel(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n fresh synthetic samples (normalised space, fp32), as the student sees them."""
        return self.synthesize(n, generator).float()

    def sample_replay(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """n replayed samples as the student sees them (fp32); None for a method without replay."""
        return None

    # -- shared steps --------------------------------------------------------------------------------
    def precision(self):
        """The synthesis and replay passes' autocast context (``self.amp``)."""
        return self.amp.autocast()

    def student_precision(self):
        """The student step's autocast context: reduced precision only with both ``bf16`` and ``bf16_student``."""
        return self.amp_student.autocast()

    def set_learning_rates(self, it: int) -> None:
        """Every optimizer's lr for iteration ``it``: configured lr x ``lr_scale`` (x the student schedule, which
        runs from iteration ``cfg.schedule_start`` to the end)."""
        c = self.cfg
        start = c.schedule_start
        for name, part in self.parts.items():
            if part.optimizer is None:
                continue
            lr = getattr(c, part.lr_key) * self.lr_scale.get(name, 1.0)
            if part.scheduled and c.schedule == "cosine":
                lr = cosine_lr(max(0, it - start), c.iterations - start, lr, c.warmup_iterations)
            set_lr(part.optimizer, lr)

    def _student_optimizer(self, params) -> torch.optim.Optimizer:
        c = self.cfg
        if c.student_optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr_student, weight_decay=c.weight_decay, foreach=True)
        return torch.optim.SGD(params, lr=c.lr_student, momentum=c.momentum, weight_decay=c.weight_decay,
                               foreach=True)

    def student_loss(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        """The student's distillation loss on a batch (``student_loss``), class-balanced with
        ``student_class_balance`` (``losses.class_balance_weights``)."""
        w = losses.class_balance_weights(t_logits) if self.cfg.student_class_balance else None
        if self.cfg.student_loss == "kl":
            return losses.kd_kl(s_logits, t_logits, self.cfg.kd_temperature, weights=w)
        return losses.logits_l1(s_logits, t_logits, weights=w)

    def synthesize(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A detached novel batch from the synthesizer (the method's precision)."""
        return self.synth.sample(n, generator)

    def student_batches(self, steps: int, first: tuple[torch.Tensor, torch.Tensor | None] | None = None
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(novel batch, its teacher logits or None) for each of ``steps`` student steps: a fresh batch every
        ``student_batch_reuse`` steps, the same one in between. ``first``: a batch (and logits) already synthesised
        this iteration, e.g. by the generator step, served first."""
        reuse = self.cfg.student_batch_reuse
        x, t = first if first is not None else (None, None)
        for k in range(steps):
            if k % reuse == 0 and not (k == 0 and x is not None):
                x, t = self.synthesize(self.cfg.batch_size), None
            yield x, t

    def novel_student_steps(self, steps: int, first: tuple[torch.Tensor, torch.Tensor | None] | None = None
                            ) -> list[torch.Tensor]:
        """``steps`` student updates on ``student_batches``; a reused (unaugmented) batch keeps the teacher's logits
        from its first step instead of another teacher pass. Returns the losses."""
        losses, last = [], None
        for x, t in self.student_batches(steps, first):
            if t is None and last is not None and last[0] is x:
                t = last[1]  # None again when the student saw an augmented batch
            loss, t_x = self.labelled_student_step(x, t)
            losses.append(loss)
            last = (x, t_x)
        return losses

    def generator_step(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """One generator update on the objective: (logged terms, the batch (detached), its teacher logits)."""
        return self.synth.step()

    def student_step(self, x: torch.Tensor, t_logits: torch.Tensor | None = None) -> torch.Tensor:
        """One student update on detached samples ``x`` (teacher logits computed here unless given; with
        ``augment_crop``/``augment_flip`` the batch is augmented first and the teacher labels what the student sees)."""
        return self.labelled_student_step(x, t_logits)[0]

    def labelled_student_step(self, x: torch.Tensor,
                              t_logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``student_step`` that also returns the teacher's logits on ``x`` itself (None when the student saw an
        augmented batch instead), so a replay memory can reuse them without another teacher pass."""
        if self.amp_student.kind == "fp32":
            x = x.float()  # bf16 samples from the generator/VAE; the fp32 step needs fp32 inputs (format kept)
        augmented = self.augmentation.active or self.cfg.augment_mixup > 0
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
        self.amp_student.minimize(loss, [self.opt_student])
        if self.student_ema is not None:
            ema_update(self.student_ema, self.student, self.cfg.student_ema)
        return loss.detach(), (None if augmented else t_logits.detach())
