"""The one loop every method shares: iterations, evaluation (reporting only), logging, checkpoints.

    result = distill(teacher, "lenet5-half", method="dfad", config={"iterations": 500},
                     eval_data=load_dataset("fashion-mnist"), out_dir="runs/x")

Evaluation on real test data never influences training or which student is saved: the saved
``student.pt`` is always the student after the last iteration.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_model, model_payload, save_checkpoint
from ..config import to_plain, update_config, write_yaml
from ..data import ImageDataset
from ..data.info import DatasetInfo
from ..errors import DfkdError
from ..evaluate import accuracy
from ..io_utils import atomic_write, atomic_write_text
from ..methods import DistillConfig, Method, get_method
from ..methods.base import eval_mode
from ..metrics_log import MetricsLog
from ..models import count_parameters, create_model
from ..progress import Progress
from ..teacher import seed_everything
from .robustness import robustness_summary


def save_sample_grid(method: Method, info: DatasetInfo, path: Path, n: int = 64) -> None:
    """A few final synthetic (and replayed) samples as uint8 images, for ``dfkd plot``."""
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        return (info.denormalize(x.float()) * 255).round().to(torch.uint8).contiguous()

    with torch.no_grad():
        grids = {"novel": to_uint8(method.sample_novel(n))}
        if hasattr(method, "sample_replay"):
            replay = method.sample_replay(n)
            if replay.shape[0]:
                grids["replay"] = to_uint8(replay)
    atomic_write(path, lambda tmp: torch.save(grids, tmp))


RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "student.pt", "samples.pt")


@dataclass
class DistillResult:
    student: nn.Module
    summary: dict[str, Any]
    method: Method
    out_dir: Path | None


def resolve_config(method_cls: type[Method], config: DistillConfig | dict[str, Any] | None) -> DistillConfig:
    if config is None:
        return method_cls.Config()
    if isinstance(config, dict):
        return update_config(method_cls.Config(), config, where=f"'{method_cls.name}' config")
    if not isinstance(config, method_cls.Config):
        raise DfkdError(f"config for '{method_cls.name}' must be a {method_cls.Config.__name__} or a dict")
    return config


def _num_outputs(model: nn.Module, info: DatasetInfo, what: str) -> int:
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(torch.zeros(2, *info.input_shape))
    except RuntimeError as exc:
        raise DfkdError(f"the {what} does not accept inputs of shape {info.input_shape}: "
                        f"{str(exc).splitlines()[0]}") from None
    if out.dim() != 2 or out.shape[0] != 2:
        raise DfkdError(f"the {what} must return logits (B, classes), got shape {tuple(out.shape)}")
    return int(out.shape[1])


def _eval_split(eval_data: ImageDataset | tuple | None):
    if eval_data is None:
        return None
    if isinstance(eval_data, ImageDataset):
        return eval_data.test_images, eval_data.test_labels
    images, labels = eval_data
    return images, labels


def distill(
    teacher: nn.Module | str | os.PathLike,
    student: nn.Module | str,
    method: str = "dfad",
    config: DistillConfig | dict[str, Any] | None = None,
    *,
    info: DatasetInfo | None = None,
    eval_data: ImageDataset | tuple[torch.Tensor, torch.Tensor] | None = None,
    out_dir: str | os.PathLike | None = None,
    student_arch: str | None = None,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> DistillResult:
    """Distil ``teacher`` into ``student`` with ``method``, data-free.

    teacher: an ``nn.Module`` (then ``info`` is required) or the path of a dfkd teacher checkpoint.
    student: an ``nn.Module`` or a zoo name (built for the teacher's classes and input shape).
    eval_data: real test data used *only* to report accuracy every ``eval_every`` iterations.
    out_dir: where the run's files go; a directory that already holds a run is refused unless ``overwrite``
        (then its files are replaced, never mixed with the new run's).
    """
    method_cls = get_method(method)
    cfg = resolve_config(method_cls, config)
    teacher_path = None
    if isinstance(teacher, (str, os.PathLike)):
        teacher_path = str(teacher)
        teacher, info, _ = load_model(teacher)
    if info is None:
        raise DfkdError("pass info=DatasetInfo(...) with a teacher module (or give a teacher checkpoint path)")
    if isinstance(student, str):
        student_arch = student
        student = create_model(student, num_classes=info.num_classes, in_channels=info.in_channels,
                               input_size=info.image_size)
    n_teacher = _num_outputs(teacher, info, "teacher")
    n_student = _num_outputs(student, info, "student")
    if n_teacher != info.num_classes:
        raise DfkdError(f"the teacher predicts {n_teacher} classes but its data set has {info.num_classes}")
    if n_student != n_teacher:
        raise DfkdError(f"the student predicts {n_student} classes but the teacher predicts {n_teacher}")
    eval_split = _eval_split(eval_data)

    seed_everything(cfg.seed)
    m = method_cls(teacher, student, info, cfg)
    out = Path(out_dir) if out_dir is not None else None
    log = None
    if out is not None:
        if (out / "config.yaml").exists() and not overwrite:
            raise DfkdError(f"'{out}' already holds a run (config.yaml); pass overwrite=True (--overwrite) or "
                            "choose another output directory")
        out.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        resolved = {"method": method_cls.name, "teacher": teacher_path, "student_arch": student_arch,
                    "dataset": info.name, **(extra_config or {}), "config": to_plain(cfg)}
        write_yaml(resolved, out / "config.yaml")
        log = MetricsLog(out / "metrics.jsonl")

    teacher_acc = None
    if eval_split is not None:
        teacher_acc = accuracy(m.teacher, *eval_split, info, cfg.eval_batch_size)["accuracy"]
        if log:
            log.write({"kind": "teacher", "test_acc": teacher_acc})

    accs: list[float] = []
    bar = Progress(cfg.iterations, desc=f"{method_cls.name}", enabled=progress)
    sums: dict[str, torch.Tensor] = {}
    n_sum = 0
    start = time.perf_counter()
    eval_seconds = 0.0
    try:
        for it in range(cfg.iterations):
            scalars = m.iteration(it)
            for k, v in scalars.items():  # accumulate on tensors: no host sync per iteration
                sums[k] = sums[k] + v if k in sums else v.clone()
            n_sum += 1
            done = it + 1
            if done % cfg.log_every == 0 or done == cfg.iterations:
                record = {k: (v / n_sum).item() for k, v in sums.items()}
                bad = [k for k, v in record.items() if not math.isfinite(v)]
                if bad:
                    raise DfkdError(f"non-finite loss ({', '.join(bad)}) at iteration {done}; lower the "
                                    "learning rates (--set lr_student=..., lr_generator=...)")
                record.update(iteration=done, kind="train", lr_student=m.opt_student.param_groups[0]["lr"],
                              wall_seconds=time.perf_counter() - start)
                if log:
                    log.write(record)
                bar.postfix.update({k: record[k] for k in ("s_loss", "g_loss") if k in record})
                sums, n_sum = {}, 0
            if eval_split is not None and (done % cfg.eval_every == 0 or done == cfg.iterations):
                t0 = time.perf_counter()
                acc = accuracy(m.student, *eval_split, info, cfg.eval_batch_size)["accuracy"]
                eval_seconds += time.perf_counter() - t0
                accs.append(acc)
                if log:
                    log.write({"iteration": done, "kind": "eval", "test_acc": acc,
                               "wall_seconds": time.perf_counter() - start})
                bar.postfix["acc"] = acc
            bar.update(1)
    finally:
        bar.close()
        if log:
            log.close()
    wall = time.perf_counter() - start

    student = m.student.to(memory_format=torch.contiguous_format)
    student.eval()
    summary: dict[str, Any] = {
        **robustness_summary(accs),
        "teacher_acc": teacher_acc,
        "iterations": cfg.iterations,
        "wall_seconds": wall,
        "train_seconds": wall - eval_seconds,
        "student_params": count_parameters(student),
        "replay_memory_bytes": m.replay_memory_bytes(),
        "replay_optimizer_bytes": m.replay_optimizer_bytes(),
        "method": method_cls.name,
        "seed": cfg.seed,
        "evaluations": len(accs),
    }
    if out is not None:
        arch = student_arch or "custom"
        kwargs = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
        save_checkpoint(model_payload(student, arch, kwargs, info, role="student",
                                      config={"method": method_cls.name, **to_plain(cfg)}, metrics=summary),
                        out / "student.pt")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        save_sample_grid(m, info, out / "samples.pt")
    return DistillResult(student, summary, m, out)


__all__ = ["distill", "DistillResult", "resolve_config"]
