"""Benchmark suites: a data set, a teacher recipe, a student, one shared distillation budget and the
methods to compare. Every method of a suite gets the same budget (iterations, batch size, student steps,
generator); only the science differs (its generator objective, student loss and replay). Budgets are
sized for a 2-core CPU with native bf16 (AVX-512-BF16) unless the suite's name says otherwise; on a CPU without it
(AVX2: dfkd runs in fp32 there) a run takes about three times as long (BENCHMARKS.md, "On a CPU without native
bf16")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str
    teacher_arch: str
    student_arch: str
    description: str
    config: dict[str, Any]  # distillation config shared by every method of the suite
    method_config: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method overrides
    teacher_overrides: dict[str, Any] = field(default_factory=dict)  # on top of the data set's recipe
    methods: tuple[str, ...] = ("dafl", "dfad", "mb-dfkd", "pre-dfkd")
    seeds: tuple[int, ...] = (0, 1, 2)
    # Per-method overrides that apply when the student is another architecture than the suite's own
    # (``dfkd bench --student``): student arch -> method -> settings, on top of ``method_config``.
    student_method_config: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def method_overrides(self, method: str, iterations: int | None = None) -> dict[str, Any]:
        """The distillation settings of ``method`` in this suite with its current student (``student_arch``)."""
        cfg = {**self.config, **self.method_config.get(method, {}),
               **self.student_method_config.get(self.student_arch, {}).get(method, {})}
        if iterations is not None:
            cfg["iterations"] = iterations
            cfg["eval_every"] = max(1, min(cfg.get("eval_every", iterations), iterations // 4 or 1))
        return cfg


SUITES: Registry[Suite] = Registry("suite")

# Budget shared by the CPU suites of small grey images (LeNet-5 -> LeNet-5-half): batch 256 novel samples,
# 5 student steps per generator step, the DAFL generator at half width (conv widths 64/32) to fit the CPU.
_SMALL = {"batch_size": 256, "student_steps": 5, "generator_width": 32, "latent_dim": 100}
# Student learning rate per method: each method's paper default and one alternative, tried on the digits
# suite (150 iterations, seed 0; BENCHMARKS.md lists the grid); the better one is kept for both small suites.
_SMALL_METHODS = {
    "dafl": {"lr_student": 1e-2},  # Adam; paper 2e-3 gave mu 84.2 vs 90.5
    "dfad": {"lr_student": 0.03},  # SGD; paper 0.01 gave mu 57.9, 0.1 gave 25.8, 0.03 gave 66.1
    "noise": {"lr_student": 0.1},  # SGD; 0.01 never left chance level
    # SGD; paper 0.1 gave mu 80.8 vs 64.3 at 0.01. Generator lr: the official 0.02 collapses on some seeds
    # (PRE-DFKD seeds 0/1/2: mu 65.9/67.3/38.3), 1e-3 (DFAD's) does not (80.2/79.9/79.4).
    "mb-dfkd": {"lr_student": 0.1, "lr_generator": 1e-3},
    "pre-dfkd": {"lr_student": 0.1, "lr_generator": 1e-3},  # SGD; paper 0.1 gave mu 84.4 vs 67.4 at 0.01
}
_SMALL_METHODS["pre-dfkd+"] = _SMALL_METHODS["pre-dfkd"]  # same optimisation; only the additions differ


def _register(suite: Suite) -> Suite:
    SUITES.register(suite.name)(lambda: suite)
    return suite


_register(Suite(
    name="digits", dataset="digits", teacher_arch="lenet5", student_arch="lenet5-half",
    description="scikit-learn digits (bundled, 32x32), LeNet-5 -> LeNet-5-half; a few minutes on 2 CPU cores",
    # The generator at half width (conv widths 32/16), as on the fashion-mnist suite: on the AVX2 CPU a pre-dfkd run
    # takes 0.6x the time and a dfad run 0.4x, and over seeds 0-2 every method's mean final accuracy is as high
    # or higher (DAFL: 3.3 lower on two seeds, while its width-32 third seed collapsed); BENCHMARKS.md, "The digits
    # suite at half generator width". Since 2026-11-28.
    config={**_SMALL, "generator_width": 16, "batch_size": 128, "iterations": 150, "eval_every": 15},
    method_config=_SMALL_METHODS,
    methods=("noise", "dafl", "dfad", "mb-dfkd", "pre-dfkd"),
))

_register(Suite(
    name="fashion-mnist", dataset="fashion-mnist", teacher_arch="lenet5", student_arch="lenet5-half",
    description="Fashion-MNIST (padded to 32x32), LeNet-5 -> LeNet-5-half; a pre-dfkd+ run about 8 minutes on 2 bf16 "
                "CPU cores (2026-12-04), about 30 on AVX2",
    # The student step in fp32 (generator and VAE in bf16): for the LeNet-5-half student it is 9 % faster per
    # iteration than a bf16 student step, and PRE-DFKD reached mu 56.1 +- 0.5 over 3 seeds against 52.2 +- 2.9
    # (bf16 step) and 53.6 +- 4.7 (all fp32); BENCHMARKS.md, "Accuracy of the fast path".
    # The generator at half width (conv widths 32/16, a quarter of the multiply-adds): an iteration costs 0.60 s
    # instead of 0.95 s. pre-dfkd+, 3 seeds: 1,200 iterations of it, mu 72.0 / final 75.7 (687 s a run), tie with
    # 800 at width 32, 70.8 / 76.2 (628 s), and beat 400 at width 32, 64.6 / 73.0 (343 s); BENCHMARKS.md,
    # "Accuracy per CPU-minute".
    config={**_SMALL, "generator_width": 16, "iterations": 1200, "eval_every": 60, "bf16_student": False},
    # pre-dfkd+'s generator objective scores its batch rolled by up to 8 px (DeepInversion's jitter, a quarter of
    # the side): 5 seeds, mu 71.7 / final 77.4 against 68.6 / 72.9 without, higher on every seed (BENCHMARKS.md,
    # "On an H100 (issue 17, 2026-11-27)"); jitter 2 and 4 gained +2.2 final.
    # pre-dfkd+ also trains its replay VAE on 2 of the 5 student steps (the paper's proportion, 4 of 10) instead of 4,
    # and spends the quarter of an iteration that saves on a third more iterations: 1,600 cost about what 1,200
    # did (1.080 against 1.434 s an iteration on the AVX2 CPU). 7 paired runs (seeds 0-3 on an H200, 2-4 on the CPU):
    # mu higher on 6 (+2.4), final on 4 (+0.9); seeds 0-4 mu 73.5 / final 77.8 against 71.7 / 77.4 (BENCHMARKS.md,
    # "On an H200 (issue 17, 2026-11-28)"). On an AVX-512-bf16 CPU (2026-12-04) the suite's pre-dfkd+ reaches mu 75.1 /
    # final 80.3 over seeds 0-4 (BENCHMARKS.md, "The fashion-mnist suite on an AVX-512-bf16 CPU").
    method_config={**_SMALL_METHODS, "pre-dfkd+": {**_SMALL_METHODS["pre-dfkd+"], "generator_jitter": 8,
                                                   "vae_updates": 2, "iterations": 1600, "eval_every": 80}},
    # With this BN-free LeNet-5 teacher and no augmentation for MNIST-like data, pre-dfkd+ is pre-dfkd with
    # in-range (sigmoid) generator outputs; pre-dfkd keeps the official generator's tanh + BatchNorm output.
    methods=("dafl", "dfad", "mb-dfkd", "pre-dfkd", "pre-dfkd+"),
))

# Fashion-MNIST with a BatchNorm teacher, the setting of the methods that match BN statistics (ADI, CMI,
# Fast-DFKD, PRE-DFKD+). The student is of the teacher's family (cnn-bn at width 8, 18,482 parameters): with
# LeNet-5-half (15,738) every method stopped at 50-55 %, and a fresh LeNet-5-half trained on a finished Fast-DFKD
# pool reached 53 % where cnn-bn-quarter reached 80 % (BENCHMARKS.md, "The BN suite's student, not its samples").
# Same batch as the fashion-mnist suite, with the budget that suite had until 2026-11-26 (2,000 student steps of
# 256 samples, the generator at width 32). ADI and CMI spend an iteration on one synthesis round into their pool,
# so they get 40 rounds of 50 student steps, with synthesis steps per round sized to about the wall time of a
# PRE-DFKD+ run with LeNet-5-half (60 pixel steps for ADI, 25 generator steps for CMI). Their student lr is
# DataFree's 0.1 (KL at T = 20), tuned for BatchNorm students; for LeNet-5-half it is 0.02 (0.1 kept it near
# 25 % on digits, 0.02: 59 %).
_ROUNDS = {"iterations": 40, "eval_every": 2, "student_steps": 50, "lr_student": 0.1}
# Fast-DFKD's rounds are cheap (5 steps from its meta-generator), so it gets Fast-Datafree's proportions: 220 rounds
# of which the first 20 only synthesise, then 10 student steps a round (the same 2,000), 1,100 generator steps in
# all (CMI: 1,000); its reset of the latent projection at round 140 is the code's (120 + warm-up).
_FAST_ROUNDS = {"iterations": 220, "eval_every": 11, "student_steps": 10, "synthesis_warmup": 20,
                "generator_steps": 5}
_POOL_LENET = {"lr_student": 0.02}
_register(Suite(
    name="fashion-mnist-bn", dataset="fashion-mnist", teacher_arch="cnn-bn", student_arch="cnn-bn-quarter",
    description="Fashion-MNIST, BatchNorm CNN -> the same CNN at a quarter width; a pre-dfkd+ or fast run about 18 min "
                "on 2 bf16 CPU cores (pre-dfkd+ about 57 on AVX2)",
    config={**_SMALL, "iterations": 400, "eval_every": 20, "bf16_student": False},
    # pre-dfkd+'s generator at lr 4e-3 (Fast-DFKD's and NAYER's with a BN prior): 3 seeds with LeNet-5-half,
    # mu 45.8 / final 55.2 against 37.2 / 49.6 at the LeNet-5 suite's 1e-3, higher on every seed (BENCHMARKS.md,
    # "A faster generator for the BN teacher"). 600 iterations (3,000 student steps) since 2026-12-04: on an
    # AVX-512-bf16 CPU seeds 0-2 ended at 80.2 / 81.2 / 79.1 against 73.3 / 77.6 / 77.9 at 400, and a run fits
    # the suite's 20 minutes there (1,073 s alone for seed 2; 5.7 s an iteration on an AVX2 CPU, about 57 min).
    # BENCHMARKS.md, "The BN suite on an AVX-512-bf16 CPU".
    method_config={**_SMALL_METHODS, "pre-dfkd+": {**_SMALL_METHODS["pre-dfkd+"], "lr_generator": 4e-3,
                                                   "iterations": 600, "eval_every": 30},
                   "adi": {**_ROUNDS, "generator_steps": 60}, "cmi": {**_ROUNDS, "generator_steps": 25},
                   # Fast-DFKD given about the time of a 600-iteration pre-dfkd+ run: 420 rounds (400 with the
                   # student), its reset_l0 moved with them (120 + warm-up of 220 -> 240 + 20 of 420), and 20 student
                   # steps a round (8,000; a student step on the pool costs a fraction of a synthesis step).
                   # AVX-512-bf16 CPU, seeds 0-1 two at a time, final: 78.1 / 74.5 at 220 rounds x 10 steps,
                   # 80.8 / 82.1 at 420 x 10, 81.9 / 83.6 at 420 x 20 (+21 % time) (BENCHMARKS.md, "Fast-DFKD at the
                   # BN suite's time").
                   "fast": {**_FAST_ROUNDS, "lr_student": 0.1, "iterations": 420, "eval_every": 21,
                            "reset_first_layer_at": 260, "student_steps": 20}},
    student_method_config={"lenet5-half": {"adi": _POOL_LENET, "cmi": _POOL_LENET, "fast": _POOL_LENET}},
    teacher_overrides={"epochs": 10, "bf16": True},  # 93.4 % in 523 s on a bf16 CPU (BENCHMARKS.md, Teachers)
    methods=("noise", "pre-dfkd+", "adi", "cmi", "fast"),
    seeds=(0,),
))

# CIFAR-10 on 2 CPU cores: a PRE-DFKD iteration (generator step, 5 student steps, 2 VAE updates) took 5.3 s
# (bf16, 2026-11-24; 3.0 s on an AVX-512-bf16 CPU, 2026-12-04), DFAD's about half. 400 iterations kept a PRE-DFKD +
# DFAD pair under an hour; this is a small budget for CIFAR-10 (the paper runs 14,400 iterations of 10 steps on
# 1,024 samples): expect far lower accuracy than the paper's.
_register(Suite(
    name="cifar10-cpu", dataset="cifar10", teacher_arch="wrn-16-2", student_arch="wrn-16-1",
    description="CIFAR-10, WRN-16-2 -> WRN-16-1, 400 iterations on 2 bf16 CPU cores: about 20 min at 5 student steps "
                "(PRE-DFKD), 34 at 10 (PRE-DFKD+); Fast-DFKD 220 rounds, about 28 min",
    config={"batch_size": 256, "student_steps": 5, "generator_width": 64, "latent_dim": 256, "iterations": 400,
            "eval_every": 40, "lr_student": 0.1, "lr_generator": 1e-3},
    # PRE-DFKD updates its VAE on 4 of 10 student steps; with 5 steps, 2 keeps that proportion.
    # pre-dfkd+ spends more of the 45 minutes on its student: 10 student steps an iteration (the official code's
    # kd_iter; VAE updates 4 of them), its generator at lr 4e-3 (as on the BN suite) after 200 warm-up updates.
    # AVX-512-bf16 CPU, seed 0, 2026-12-04: mu 38.6 / final 52.7 at the suite's 5 steps and lr 1e-3, 53.4 / 70.9 with
    # 10 steps and lr 4e-3, 56.2 / 70.3 with the warm-up too (seed 1: 59.5 / 72.0), about 34 min a run alone
    # (BENCHMARKS.md, "pre-dfkd+ on cifar10-cpu on the CPU").
    # ADI and CMI (WRN-16-1 has BatchNorm: DataFree's student lr 0.1 applies): 40 rounds of 50 student steps,
    # the same 2,000 student steps. A CMI round costs about 60 s on 2 cores (about 40 min a run); on an H100 CMI
    # reached final 68.3 % over 2 seeds, ADI 18.3 % (BENCHMARKS.md, "On an H100 (issue 17, 2026-11-26)").
    # Fast-DFKD: Fast-Datafree's 220 rounds (reset_l0 at 140) with 20 student steps a round (4,000; a pool step
    # costs 0.26 s against 5.1 s for a round's 5 synthesis steps on an AVX-512-bf16 CPU); on that CPU, 2026-12-04,
    # seeds 0-2: final 79.6 +- 0.4, mu 66.5 +- 0.5, 28 min for seed 2 alone on the 2 cores (BENCHMARKS.md,
    # "Fast-DFKD on cifar10-cpu on the CPU").
    method_config={"dafl": {"student_optimizer": "sgd", "lr_student": 0.1, "weight_decay": 5e-4},
                   "pre-dfkd": {"vae_updates": 2},
                   "pre-dfkd+": {"lr_generator": 4e-3, "student_steps": 10, "vae_updates": 4, "generator_warmup": 200},
                   "adi": {"iterations": 40, "eval_every": 4, "student_steps": 50, "generator_steps": 50},
                   "cmi": {"iterations": 40, "eval_every": 4, "student_steps": 50, "generator_steps": 20},
                   "fast": {**_FAST_ROUNDS, "eval_every": 22, "student_steps": 20}},
    methods=("dfad", "pre-dfkd", "pre-dfkd+", "mb-dfkd", "dafl", "adi", "cmi", "fast"),
    seeds=(0,),
))

# The paper's settings (ResNet-34 -> ResNet-18, official iteration counts and batch sizes), for GPU users.
_PAPER = {"batch_size": 1024, "student_steps": 10, "generator_width": 64, "latent_dim": 1000,
          "iterations": 400 * 36, "eval_every": 36, "lr_student": 0.1, "lr_generator": 0.02,
          "student_optimizer": "sgd", "weight_decay": 5e-4}
# ADI and CMI at DataFree's CIFAR-10 settings (200 rounds of 400 student steps, batch 256; their own
# synthesis steps, learning rates and weights are the method defaults).
_DF_ROUNDS = {"iterations": 200, "eval_every": 1, "batch_size": 256, "student_steps": 400, "weight_decay": 1e-4}
_PAPER_METHODS = {"dfad": {"lr_generator": 1e-3}, "dafl": {"lr_generator": 0.2},
                  "adi": {**_DF_ROUNDS, "generator_steps": 1000, "lr_generator": 0.1},
                  "cmi": {**_DF_ROUNDS, "generator_steps": 200, "lr_generator": 1e-3, "latent_dim": 256},
                  # Fast-Datafree's 220 rounds (20 synthesis-only); its own step counts, rates and weights (defaults)
                  "fast": {**_DF_ROUNDS, "iterations": 220, "generator_steps": 5, "lr_generator": 3e-3,
                           "latent_dim": 256, "lr_student": 0.2}}

_register(Suite(
    name="cifar10-paper", dataset="cifar10", teacher_arch="resnet34", student_arch="resnet18",
    description="CIFAR-10 at the paper's scale (400 epochs x 36 iterations, batch 1024 + 128); needs a GPU",
    config=_PAPER, method_config=_PAPER_METHODS, teacher_overrides={"epochs": 200},
    methods=("dafl", "dfad", "mb-dfkd", "pre-dfkd", "adi", "cmi", "fast"), seeds=(0,),
))

_register(Suite(
    name="cifar100-paper", dataset="cifar100", teacher_arch="resnet34", student_arch="resnet18",
    description="CIFAR-100 at the paper's scale (400 epochs x 36 iterations, batch 1024 + 128); needs a GPU",
    config=_PAPER, method_config=_PAPER_METHODS, teacher_overrides={"epochs": 200},
    methods=("dafl", "dfad", "mb-dfkd", "pre-dfkd", "adi", "cmi", "fast"), seeds=(0,),
))


def get_suite(name: str) -> Suite:
    return SUITES.create(name)
