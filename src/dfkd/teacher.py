"""Teacher training with a recipe per data set, so a user gets a good teacher without tuning.

Recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4, per-iteration cosine decay after a short
linear warm-up, cross-entropy; the data set's augmentation (``data.augment.default_augmentation``: crop + flip
for natural images, crop only for SVHN, none for MNIST-like data). The epoch
counts are chosen for this project's targets (digits >= 97 %, Fashion-MNIST LeNet-5 >= 90 %, BN CNN >= 92 %,
CIFAR-10 WRN-16-2 >= 90 %) at CPU cost; ``--epochs`` etc. override them.

Long runs are resumable: after every epoch the full training state (weights, optimizer, epoch, step, the
shuffling/augmentation generator and the global RNGs) is written atomically to ``teacher-state.pt``;
``resume=True`` (``dfkd train-teacher ... --resume``) continues from the last finished epoch with the
same settings, and gives the same weights as an uninterrupted run on the same machine and thread count.
The state file is removed once ``teacher.pt`` is written.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import model_payload, save_checkpoint
from .config import to_plain, update_config
from .io_utils import atomic_write, atomic_write_text
from .data import DatasetInfo, ImageDataset, augment_batch, iterate_batches
from .data.augment import Augmentation, default_augmentation
from .errors import DfkdError
from .evaluate import accuracy
from .device import choose_precision, resolve_device, to_cpu, to_device
from .precision import Precision
from .rng import rng_state, seed_everything, set_rng_state
from .metrics_log import MetricsLog
from .models import create_model
from .progress import Progress
from .schedules import cosine_lr, set_lr


@dataclass
class TeacherConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    crop_padding: int = -1  # -1: the data set's default (default_augmentation)
    hflip: bool | None = None  # None: the data set's default
    bf16: bool = False
    channels_last: bool = False
    seed: int = 0
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise DfkdError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "momentum", "warmup_epochs", "label_smoothing"):
            if getattr(self, key) < 0:
                raise DfkdError(f"{key} must be non-negative, got {getattr(self, key)}")


# Per data set overrides of the defaults above (see the module docstring for the targets they meet).
RECIPES: dict[str, dict[str, Any]] = {
    # 1,438 training images: a 2-pixel random shift is what takes LeNet-5 from ~96.5 % to ~98.5 %.
    "digits": {"epochs": 40, "batch_size": 64, "lr": 0.05, "crop_padding": 2},
    "mnist": {"epochs": 10, "batch_size": 128, "lr": 0.05},
    "fashion-mnist": {"epochs": 20, "batch_size": 128, "lr": 0.05},  # cnn-bn reaches 93.4 % with 10 (bf16)
    "cifar10": {"epochs": 60, "batch_size": 128, "lr": 0.1, "bf16": True, "channels_last": True},
    "cifar100": {"epochs": 100, "batch_size": 128, "lr": 0.1, "bf16": True, "channels_last": True},
    # No offline copy of these two here: common recipes from the literature, not measured by us.
    "svhn": {"epochs": 30, "batch_size": 128, "lr": 0.05, "bf16": True, "channels_last": True},
    "tiny-imagenet": {"epochs": 100, "batch_size": 128, "lr": 0.1, "bf16": True, "channels_last": True},
}


def recipe(dataset_name: str, **overrides: Any) -> TeacherConfig:
    base = RECIPES.get(dataset_name, {"epochs": 60, "lr": 0.1})
    return update_config(TeacherConfig(), {**base, **overrides}, where="teacher config")


def _augmentation(cfg: TeacherConfig, dataset_name: str) -> Augmentation:
    default = default_augmentation(dataset_name)
    return Augmentation(
        crop_padding=default.crop_padding if cfg.crop_padding < 0 else cfg.crop_padding,
        hflip=default.hflip if cfg.hflip is None else cfg.hflip,
    )


STATE_FILE = "teacher-state.pt"


def _save_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, cfg: TeacherConfig,
                epoch: int, step: int, metrics: dict[str, Any]) -> None:
    state = to_cpu({"format": 1, "config": to_plain(cfg), "epoch": epoch, "step": step, "metrics": metrics,
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                    "rng": rng_state()})
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_state(path: Path, cfg: TeacherConfig) -> dict[str, Any]:
    from .engine.run_dir import config_differences

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a checkpoint
        raise DfkdError(f"cannot read '{path}' ({type(exc).__name__}); it is truncated or corrupt; start over with "
                        "--overwrite") from None
    diffs = config_differences(state["config"], to_plain(cfg))
    if diffs:
        raise DfkdError(f"'{path.parent}' holds a teacher run with other settings ({'; '.join(diffs[:3])}); resume "
                        "with the same settings, or use --overwrite to start over")
    return state


def new_teacher_model(arch: str, info: DatasetInfo, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh ``arch`` for data set ``info``, its initial weights fixed by ``seed``; returns (model, arch kwargs).

    ``train_teacher`` seeds the data order and augmentation but trains the model it is given, so whatever
    builds the model must seed its initialisation: one seed, one teacher.
    """
    kwargs = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
    seed_everything(seed)
    with torch.device("cpu"):
        return create_model(arch, **kwargs), kwargs


def train_teacher(model: nn.Module, data: ImageDataset, cfg: TeacherConfig, *, arch: str = "custom",
                  arch_kwargs: dict[str, Any] | None = None, out_dir: str | os.PathLike | None = None,
                  progress: bool = True, resume: bool = False, device: str | torch.device = "auto") -> dict[str, Any]:
    """Train ``model`` in place on ``data``; write ``teacher.pt`` and ``metrics.jsonl`` to ``out_dir``.

    Returns the final metrics (``test_acc`` is the accuracy of the final model; no epoch is picked on the
    test set). ``model``'s initial weights are the caller's (``new_teacher_model`` seeds them). With ``resume``
    and a ``teacher-state.pt`` in ``out_dir``, training continues from it (on any device). ``device``: as
    ``distill``'s; the images stay on the host as uint8 and move batch by batch; the trained model is returned
    on the CPU. ``bf16: true`` means the device's reduced precision (``dfkd.device``).
    """
    seed_everything(cfg.seed)
    info = data.info
    aug = _augmentation(cfg, info.name)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = data.train_images.shape[0]
    drop_last = n >= cfg.batch_size  # full batches only (BN-friendly), unless the data set is smaller than one
    steps_per_epoch = n // cfg.batch_size if drop_last else 1
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    dev = resolve_device(device)
    amp = Precision(choose_precision(dev, cfg.bf16), dev)
    model.to(device=dev, memory_format=memory_format)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    state_path = Path(out_dir) / STATE_FILE if out_dir else None
    first_epoch, step, metrics, elapsed = 0, 0, {}, 0.0
    if resume and state_path is not None and state_path.exists():
        from .engine.run_dir import metric_lines

        state = _load_state(state_path, cfg)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        set_rng_state(state["rng"])
        first_epoch, step, metrics = state["epoch"], state["step"], state["metrics"]
        elapsed = metrics.get("wall_seconds", 0.0)
        log_path = Path(out_dir) / "metrics.jsonl"
        atomic_write_text(log_path, "".join(metric_lines(log_path, first_epoch, state_path, first_epoch, "epoch")))
    elif out_dir and (Path(out_dir) / "metrics.jsonl").exists():
        (Path(out_dir) / "metrics.jsonl").unlink()  # a fresh run: never a log mixing two runs
    log = MetricsLog(Path(out_dir) / "metrics.jsonl") if out_dir else None
    bar = Progress(total, desc=f"teacher {arch} on {info.name}", enabled=progress)
    bar.update(step)
    start = time.perf_counter() - elapsed
    try:
        for epoch in range(first_epoch, cfg.epochs):
            model.train()
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), dtype=torch.long, device=dev)
            seen = 0
            for xb, yb in iterate_batches(data.train_images, data.train_labels, cfg.batch_size, shuffle=True,
                                          generator=gen, drop_last=drop_last):
                set_lr(opt, cosine_lr(step, total, cfg.lr, warmup))
                xb, yb = to_device(xb, dev), to_device(yb, dev)
                x = info.normalize(augment_batch(xb, aug, gen)).contiguous(memory_format=memory_format)
                with amp.autocast():
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                amp.minimize(loss, [opt])
                # Accumulate on tensors: no host sync per step.
                loss_sum += loss.detach() * len(yb)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(yb)
                step += 1
                bar.update(1, epoch=epoch + 1)
            if not torch.isfinite(loss_sum):
                raise DfkdError(f"teacher training diverged (non-finite loss) in epoch {epoch + 1}; lower --lr")
            test = accuracy(model, data.test_images, data.test_labels, info, cfg.eval_batch_size,
                            amp.kind, device=dev)
            metrics = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum.item() / seen,
                       "train_acc": 100.0 * correct.item() / seen, "test_acc": test["accuracy"],
                       "lr": opt.param_groups[0]["lr"], "wall_seconds": time.perf_counter() - start}
            bar.update(0, loss=metrics["train_loss"], test_acc=metrics["test_acc"])
            if log:
                log.write(metrics)
            if state_path is not None and epoch + 1 < cfg.epochs:
                _save_state(state_path, model, opt, gen, cfg, epoch + 1, step, metrics)
    finally:
        bar.close()
        if log:
            log.close()
    model.to(device="cpu", memory_format=torch.contiguous_format)
    model.eval()
    if out_dir:
        payload = model_payload(model, arch, arch_kwargs or {}, info, role="teacher",
                                config=to_plain(cfg), metrics=metrics)
        save_checkpoint(payload, Path(out_dir) / "teacher.pt")
        state_path.unlink(missing_ok=True)
    return metrics


__all__ = ["TeacherConfig", "RECIPES", "new_teacher_model", "recipe", "train_teacher"]
