"""The settings every distillation method shares (``DistillConfig``) and the checks methods' own configs
reuse. Defaults are overridden per method (each with its source) and per benchmark suite."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DfkdError


def require_positive(cfg: object, *keys: str) -> None:
    for key in keys:
        if not getattr(cfg, key) > 0:
            raise DfkdError(f"config '{key}' must be positive, got {getattr(cfg, key)}")


def require_non_negative(cfg: object, *keys: str) -> None:
    for key in keys:
        if not getattr(cfg, key) >= 0:  # also rejects NaN
            raise DfkdError(f"config '{key}' must be non-negative, got {getattr(cfg, key)}")


# The weights of the shared generator objective (``Method.generator_objective``). A method whose objective reads
# only some of them lists those (``Method.objective_weights``); a weight set > 0 that its objective would not read
# is refused rather than silently ignored.
GENERATOR_WEIGHTS = ("w_one_hot", "w_info_entropy", "w_activation", "w_bn", "w_class", "w_adversarial", "w_tv",
                     "w_contrastive", "w_input_stats", "w_boundary")


@dataclass
class DistillConfig:
    """Settings every method shares. Defaults are overridden per method (with their source) and per suite."""

    iterations: int = 1000  # budget: number of iterations (each = generator step(s) + student steps)
    batch_size: int = 256  # novel synthetic samples per step
    student_steps: int = 5  # student updates per iteration
    # Student steps each synthesised novel batch serves (1: a fresh batch every step). A batch reused k times
    # costs one synthesis for k student steps; with augmentation on, every reuse is augmented anew.
    student_batch_reuse: int = 1
    generator_steps: int = 1  # generator updates per iteration
    generator: str = "dcgan"  # a registered generator (dfkd list generators)
    generator_options: dict[str, Any] = field(default_factory=dict)  # the generator's own settings
    latent_dim: int = 100
    generator_width: int = 64  # DAFL/PRE-DFKD: 64 (conv widths 128 and 64)
    lr_generator: float = 1e-3
    generator_beta1: float = 0.9
    # DeepInversion's jitter for a trained generator: the teacher (and student) score the batch translated by one
    # random (dy, dx) in [-N, N] (torch.roll; with N <= the data set's black frame, a translation with black fill)
    generator_jitter: int = 0
    student_optimizer: str = "sgd"  # sgd | adam
    lr_student: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # student lr over the iterations: cosine | constant
    warmup_iterations: int = 0
    # Generator objective (weights of the terms in dfkd.losses; 0 disables a term and its forward pass)
    w_one_hot: float = 0.0
    w_info_entropy: float = 0.0
    w_activation: float = 0.0
    # the teacher module whose output the activation prior reads (a name from named_modules(), e.g. "features.9",
    # LeNet-5's 120 conv3 features as DAFL uses); empty: the teacher's penultimate features
    activation_layer: str = ""
    w_adversarial: float = 0.0
    w_bn: float = 0.0  # BatchNorm-statistics prior (DeepInversion; dfkd.terms.bn_statistics); needs a BN teacher
    # Fast-DFKD's BN momentum m (its bn_mmt): the prior matches (1 - m) x this batch's statistics + m x an EMA of the
    # earlier batches' (one per generator update, or per synthesis round), so no single batch must match alone
    bn_momentum: float = 0.0
    w_class: float = 0.0  # CE toward the class each sample is synthesised for (needs class_conditional or rounds)
    w_tv: float = 0.0  # total-variation prior on the synthetic pixels (DeepInversion; dfkd.terms.image_priors)
    # pixel mean and variance of a synthetic batch toward the normaliser's 0 and 1 (dfkd.terms.image_priors)
    w_input_stats: float = 0.0
    # soft targets between each sample's top two teacher classes (dfkd.terms.teacher_priors.boundary; meant with
    # w_one_hot=0): the batch's mixing weights rise from 0 to boundary_mix
    w_boundary: float = 0.0
    boundary_mix: float = 0.5
    # CMI's contrastive term (dfkd.terms.contrastive; needs a BN teacher): samples should differ from each other as
    # the teacher sees them. Its settings are DataFree's CIFAR values, except the feature memory: 0 rows here
    # (contrast within each batch, nothing kept across steps); CMI keeps 40,960
    w_contrastive: float = 0.0
    contrastive_temperature: float = 0.1  # DataFree cr_T
    contrastive_head_dim: int = 256  # DataFree head_dim
    contrastive_bank_size: int = 0  # rows of earlier batches' features kept as negatives (DataFree bank_size)
    contrastive_negatives: int = 4096  # memory rows drawn per step (DataFree n_neg)
    # The generator's input is [z, onehot(y)] with classes y balanced in each batch, and the objective's targets
    # are y (dfkd.synthesizers.generator); generator methods only
    class_conditional: bool = False
    adversarial_loss: str = "l1"  # l1 (DFAD) | js (PRE-DFKD, bounded Jensen-Shannon)
    # EMA generator (MAD, Do et al. NeurIPS 2022): a slowly moving copy of the generator supplies this
    # fraction of every student batch, so the student keeps seeing what the generator produced lately
    ema_generator: float = 0.0  # EMA momentum (0: off; e.g. 0.99)
    ema_fraction: float = 0.5
    js_temperature: float = 3.0
    # Augmentation of the student's synthetic batches (as CMI and Fast-DFKD do; the teacher labels the
    # augmented images): random crop of the same size from a zero-padded image (0 = off), horizontal flip
    augment_crop: int = 0
    augment_flip: bool = False
    # mixup (Zhang et al., ICLR 2018) of synthetic samples: this fraction of each student batch is replaced by
    # lam * x_i + (1 - lam) * x_j (lam ~ U(0, 1), j a random partner); the teacher labels the mixtures
    augment_mixup: float = 0.0
    # Student objective
    student_loss: str = "l1"  # l1 (logits) | kl (KD at kd_temperature)
    # Class-balanced student loss: each sample's loss weighted by the inverse frequency of its teacher class in the
    # batch, w_i = B / (K_b * n_{argmax T(x_i)}) with K_b the classes present (mean weight 1), so a batch the
    # teacher puts mostly in one class (a young generator's) still teaches every class it contains. Off by default.
    student_class_balance: bool = False
    # Weight averaging of the student (Polyak; "mean teacher"/EMA as in Tarvainen & Valpola 2017): a copy updated
    # after every student step, ema <- m * ema + (1 - m) * student (BatchNorm buffers copied). With m > 0 the copy
    # is what is evaluated, measured by the progress signal and saved as student.pt. 0: off.
    student_ema: float = 0.0
    kd_temperature: float = 1.0
    # Run settings
    # Reduced-precision autocast where the device has it (losses stay fp32): bf16 on CPUs and Ampere+ GPUs, fp16
    # with a gradient scaler on older GPUs, fp32 on MPS (dfkd.device); false: fp32 everywhere
    bf16: bool = True
    amp_dtype: str = "auto"  # auto | bfloat16 | float16: the reduced precision, when bf16 is true
    # with bf16: also autocast the student step (student forward/backward and the teacher's labels for it);
    # false keeps that step in fp32 while the generator and VAE passes stay bf16
    bf16_student: bool = True
    channels_last: bool = True
    eval_every: int = 100  # test accuracy (with eval data) and the data-free progress signal every N iterations
    signal_samples: int = 512  # fresh synthetic samples per progress-signal measurement (0: off)
    log_every: int = 10
    eval_batch_size: int = 1000
    seed: int = 0
    # Reliability (dfkd.engine.loop): none of these change what is computed
    checkpoint_every: int = 100  # full-state checkpoint (state.pt) every N iterations and at the end; 0: end only
    max_rollbacks: int = 3  # non-finite values: roll back + halve the offending lr at most this often in a row
    collapse_threshold: float = 0.8  # mode collapse: the teacher's top class takes >= this fraction of a batch ...
    collapse_patience: int = 50  # ... for at least this many consecutive iterations
    # Several processes (torchrun; dfkd.distributed): batch_size is the global batch
    sync_bn: bool = False  # SyncBatchNorm for student and generator (PyTorch supports it on GPUs only)
    dist_timeout_s: float = 300.0  # a collective waiting longer than this fails (a rank died or hangs)

    @property
    def student_bf16(self) -> bool:
        """Whether the student step runs under bf16 autocast (``bf16`` and ``bf16_student``)."""
        return self.bf16 and self.bf16_student

    @property
    def schedule_start(self) -> int:
        """The iteration where the student's schedule (warm-up, then cosine) starts; methods whose student starts
        late override it."""
        return 0

    def notices(self) -> list[str]:
        """Settings that are valid but will not act as set in this run (one line each); the loop prints them when a
        run starts. Methods extend it for their own iteration-indexed settings."""
        out = []
        if self.warmup_iterations and self.schedule != "cosine":
            out.append(f"config 'warmup_iterations' ({self.warmup_iterations}) applies to the cosine schedule only: "
                       f"with schedule '{self.schedule}' the learning rates start at their set values")
        elif self.warmup_iterations >= self.iterations - self.schedule_start > 0:
            out.append(f"config 'warmup_iterations' ({self.warmup_iterations}) is not below the "
                       f"{self.iterations - self.schedule_start} scheduled iterations: the learning rates never leave "
                       "their linear warm-up")
        return out

    def __post_init__(self) -> None:
        require_positive(self, "iterations", "batch_size", "eval_every", "log_every", "eval_batch_size", "latent_dim",
                         "generator_width", "collapse_patience", "student_batch_reuse")
        require_non_negative(self, "student_steps", "generator_steps", "generator_jitter", "warmup_iterations",
                             "checkpoint_every", "signal_samples",
                             "max_rollbacks", "augment_crop",
                             "lr_generator", "lr_student", "momentum", "weight_decay", "w_one_hot", "w_info_entropy",
                             "w_activation", "w_adversarial", "w_bn", "w_class", "w_tv", "w_contrastive",
                             "w_input_stats", "w_boundary",
                             "kd_temperature", "js_temperature", "contrastive_bank_size")
        require_positive(self, "contrastive_temperature", "contrastive_head_dim", "contrastive_negatives")
        choices = {"student_optimizer": ("sgd", "adam"), "schedule": ("cosine", "constant"),
                   "adversarial_loss": ("l1", "js"), "student_loss": ("l1", "kl"),
                   "amp_dtype": ("auto", "bfloat16", "float16")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise DfkdError(f"config '{key}' must be one of {', '.join(valid)}, got '{getattr(self, key)}'")
        if not 0 <= self.boundary_mix <= 0.5:
            raise DfkdError(f"config 'boundary_mix' must be in [0, 0.5] (above 0.5 the runner-up class would be the "
                            f"target), got {self.boundary_mix}")
        if not 0 <= self.bn_momentum < 1:
            raise DfkdError(f"config 'bn_momentum' must be in [0, 1), got {self.bn_momentum}")
        if not 0 <= self.student_ema < 1:
            raise DfkdError(f"config 'student_ema' must be in [0, 1), got {self.student_ema}")
        if not (0 <= self.ema_generator < 1 and 0 <= self.ema_fraction <= 1):
            raise DfkdError(f"config 'ema_generator' must be in [0, 1) and 'ema_fraction' in [0, 1], got "
                            f"{self.ema_generator} and {self.ema_fraction}")
        if not 0 <= self.augment_mixup <= 1:
            raise DfkdError(f"config 'augment_mixup' must be in [0, 1], got {self.augment_mixup}")
        if not self.dist_timeout_s > 0:
            raise DfkdError(f"config 'dist_timeout_s' must be positive, got {self.dist_timeout_s}")
        if not 0 < self.collapse_threshold <= 1:
            raise DfkdError(f"config 'collapse_threshold' must be in (0, 1], got {self.collapse_threshold}")
