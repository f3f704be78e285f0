"""The one loop every method shares: iterations, evaluation (reporting only), logging, checkpoints, resume.

    result = distill(teacher, "lenet5-half", method="dfad", config={"iterations": 500},
                     eval_data=load_dataset("fashion-mnist"), out_dir="runs/x")

Evaluation on real test data never influences training or which student is saved: the saved
``student.pt`` is always the student after the last iteration.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_model, model_payload, save_checkpoint
from ..config import read_yaml, to_plain, update_config, write_yaml
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
from .progress_signal import signal_summary, synthetic_agreement
from .robustness import robustness_summary
from .run_state import (STATE_FILE, LoopState, load_run_state, non_finite, offending_optimizers, restore,
                        save_run_state, set_rng_state, snapshot)
from .stop import RunInterrupted, StopSignals


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


def _metric_lines(path: Path, rows: int, state_path: Path, done: int) -> list[str]:
    """The first ``rows`` lines of a run's metrics.jsonl, each checked to be one JSON object.

    Lines after them (written after the checkpoint, possibly torn by a crash) are dropped: the resumed run
    writes them again, so the log ends with no duplicated or missing rows.
    """
    fix = ("restore the file, or start the run over with --overwrite")
    if not path.exists():
        raise DfkdError(f"'{path}' is missing but checkpoint '{state_path}' (iteration {done}) expects {rows} rows; "
                        f"{fix}")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) < rows:
        raise DfkdError(f"'{path}' has {len(lines)} rows but checkpoint '{state_path}' (iteration {done}) expects "
                        f"{rows}; the log was truncated or edited; {fix}")
    for i, line in enumerate(lines[:rows], 1):
        try:
            ok = isinstance(json.loads(line), dict) and line.endswith("\n")
        except ValueError:
            ok = False
        if not ok:
            raise DfkdError(f"'{path}' line {i} is corrupt (not one JSON object); {fix}")
    return lines[:rows]


def _config_differences(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(saved) | set(wanted)):
        a, b = saved.get(k), wanted.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} in the run, {b!r} now")
    return out


def _open_run_dir(out: Path, m: Method, resolved: dict[str, Any], overwrite: bool, resume: bool) -> LoopState:
    """Prepare ``out`` for a fresh run, or restore the run checkpointed there (``resume``)."""
    state_path, config_path = out / STATE_FILE, out / "config.yaml"
    if resume and not overwrite and (state_path.exists() or config_path.exists()):
        saved = read_yaml(config_path) if config_path.exists() else None
        payload = load_run_state(state_path) if state_path.exists() else None
        diffs = _config_differences(payload["resolved"] if payload else saved or {}, resolved)
        if diffs:
            raise DfkdError(f"'{out}' holds a run with other settings ({'; '.join(diffs[:3])}); resume it with the "
                            "same settings (dfkd resume DIR), or use --overwrite to start over")
        if payload is not None:
            loop = LoopState.from_dict(payload["loop"])
            lines = _metric_lines(out / "metrics.jsonl", loop.rows, state_path, loop.done)
            m.load_state_dict(payload["method_state"])
            set_rng_state(payload["rng"])
            atomic_write_text(out / "metrics.jsonl", "".join(lines))
            return loop
        # killed before its first checkpoint: nothing to keep, start it again below
    elif config_path.exists() and not overwrite:
        raise DfkdError(f"'{out}' already holds a run (config.yaml); pass resume=True (--resume) to continue it, "
                        "overwrite=True (--overwrite) to replace it, or choose another output directory")
    out.mkdir(parents=True, exist_ok=True)
    for name in (*RUN_FILES, STATE_FILE):
        (out / name).unlink(missing_ok=True)
    write_yaml(resolved, config_path)
    return LoopState()


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
    resume: bool = False,
) -> DistillResult:
    """Distil ``teacher`` into ``student`` with ``method``, data-free.

    teacher: an ``nn.Module`` (then ``info`` is required) or the path of a dfkd teacher checkpoint.
    student: an ``nn.Module`` or a zoo name (built for the teacher's classes and input shape).
    eval_data: real test data used *only* to report accuracy every ``eval_every`` iterations.
    out_dir: where the run's files go (config.yaml, metrics.jsonl, state.pt every ``checkpoint_every``
        iterations, and at the end student.pt, summary.json, samples.pt). A directory that already holds a
        run is refused unless ``overwrite`` (its files are replaced, never mixed with the new run's) or
        ``resume`` (the run continues from its ``state.pt``, with the same settings, and finishes exactly as
        it would have without the interruption; with no run there, it starts fresh).

    Reliability: a non-finite loss or weight rolls the run back to the last good state (at most
    ``log_every`` iterations earlier), halves the learning rate of the part that failed and goes on with
    fresh random draws; after ``max_rollbacks`` failures in a row it stops with an error. SIGINT/SIGTERM
    finish the current iteration, write a checkpoint and raise ``RunInterrupted``.
    """
    method_cls = get_method(method)
    cfg = resolve_config(method_cls, config)
    teacher_path = None
    if isinstance(teacher, (str, os.PathLike)):
        teacher_path = str(teacher)
        teacher, info, _ = load_model(teacher)
    if info is None:
        raise DfkdError("pass info=DatasetInfo(...) with a teacher module (or give a teacher checkpoint path)")
    seed_everything(cfg.seed)  # before the student is built: the seed fixes its initial weights too
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
    if resume and out_dir is None:
        raise DfkdError("resume needs the run's output directory (out_dir / --out)")

    m = method_cls(teacher, student, info, cfg)
    out = Path(out_dir) if out_dir is not None else None
    resolved = to_plain({"method": method_cls.name, "teacher": teacher_path, "student_arch": student_arch,
                         "dataset": info.name, **(extra_config or {}), "config": to_plain(cfg)})
    loop, log = LoopState(), None
    if out is not None:
        loop = _open_run_dir(out, m, resolved, overwrite, resume)
        log = MetricsLog(out / "metrics.jsonl")

    def write_row(record: dict[str, Any]) -> None:
        if log:
            log.write(record)
            loop.rows += 1

    if eval_split is not None and loop.done == 0 and loop.teacher_acc is None:
        loop.teacher_acc = accuracy(m.teacher, *eval_split, info, cfg.eval_batch_size)["accuracy"]
        write_row({"kind": "teacher", "test_acc": loop.teacher_acc})

    bar = Progress(cfg.iterations, desc=f"{method_cls.name}", enabled=progress, initial=loop.done)
    session_start, elapsed_before = time.perf_counter(), loop.elapsed
    good, failures = snapshot(m, loop), 0
    try:
        with StopSignals(enabled=out is not None) as stop:
            while loop.done < cfg.iterations:
                scalars = m.iteration(loop.done)
                for k, v in scalars.items():  # accumulate on tensors: no host sync per iteration
                    loop.sums[k] = loop.sums[k] + v if k in loop.sums else v.clone()
                loop.n_sum += 1
                loop.done += 1
                done = loop.done
                bar.update(1)
                last = done == cfg.iterations
                at_log = done % cfg.log_every == 0 or last
                at_eval = done % cfg.eval_every == 0 or last
                at_ckpt = out is not None and (last or (cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0))
                if not (at_log or at_eval or at_ckpt or stop.requested):
                    continue
                # A boundary: the only place with host syncs. Nothing non-finite gets past it.
                bad = non_finite(m, loop.sums)
                if bad:
                    failures += 1
                    if failures > cfg.max_rollbacks:
                        raise DfkdError(f"non-finite values ({', '.join(bad)}) at iteration {done} again after "
                                        f"{cfg.max_rollbacks} rollbacks with halved learning rates; lower the "
                                        "learning rates (--set lr_student=..., lr_generator=...)")
                    total_rollbacks = loop.rollbacks + 1
                    loop = restore(m, good)
                    loop.rollbacks = total_rollbacks
                    lowered = offending_optimizers(m, bad)
                    for name in lowered:
                        m.lr_scale[name] = m.lr_scale.get(name, 1.0) * 0.5
                    write_row({"kind": "rollback", "iteration": done, "back_to": loop.done, "non_finite": bad,
                               "lr_scale": {n: m.lr_scale[n] for n in lowered}})
                    print(f"\ndfkd: non-finite {', '.join(bad)} at iteration {done}: rolled back to iteration "
                          f"{loop.done}, halved the learning rate of {', '.join(lowered)}", file=sys.stderr)
                    good = snapshot(m, loop)
                    bar.n = loop.done
                    continue
                failures = 0
                if at_log:
                    n = loop.n_sum
                    record = {k: (v / n).item() for k, v in loop.sums.items()}
                    record.update(iteration=done, kind="train", lr_student=m.opt_student.param_groups[0]["lr"],
                                  wall_seconds=elapsed_before + time.perf_counter() - session_start)
                    write_row(record)
                    loop.sums, loop.n_sum = {}, 0
                    _track_collapse(loop, record.get("top_class_frac"), n, cfg, write_row)
                    bar.postfix.update({k: record[k] for k in ("s_loss", "g_loss") if k in record})
                if at_eval:
                    t0 = time.perf_counter()
                    row: dict[str, Any] = {"iteration": done, "kind": "eval"}
                    if eval_split is not None:
                        row["test_acc"] = accuracy(m.student, *eval_split, info, cfg.eval_batch_size)["accuracy"]
                        loop.accs.append(row["test_acc"])
                        bar.postfix["acc"] = row["test_acc"]
                    if cfg.signal_samples > 0:  # own RNG stream: measuring never changes the run
                        row.update(synthetic_agreement(m, cfg.signal_samples, seed=cfg.seed * 1_000_003 + done))
                        loop.signal.append(row["agree_novel"])
                        bar.postfix["agree"] = row["agree_novel"]
                    loop.eval_seconds += time.perf_counter() - t0
                    row["wall_seconds"] = elapsed_before + time.perf_counter() - session_start
                    write_row(row)
                loop.elapsed = elapsed_before + time.perf_counter() - session_start
                good = snapshot(m, loop)
                if at_ckpt or stop.requested:
                    save_run_state(out / STATE_FILE, m, loop, resolved)
                if stop.requested:
                    raise RunInterrupted(f"stopped by {stop.name} after iteration {done}/{cfg.iterations}; "
                                         f"checkpoint saved; continue with: dfkd resume {out}", stop.signum)
    finally:
        bar.close()
        m.close()  # no hook stays attached to the user's teacher
        if log:
            log.close()

    student = m.student.to(memory_format=torch.contiguous_format)
    student.eval()
    summary: dict[str, Any] = {
        **robustness_summary(loop.accs),
        "teacher_acc": loop.teacher_acc,
        "iterations": cfg.iterations,
        "wall_seconds": loop.elapsed,
        "train_seconds": loop.elapsed - loop.eval_seconds,
        "student_params": count_parameters(student),
        "replay_memory_bytes": m.replay_memory_bytes(),
        "replay_optimizer_bytes": m.replay_optimizer_bytes(),
        "method": method_cls.name,
        "seed": cfg.seed,
        "evaluations": len(loop.accs),
        "mode_collapse": loop.collapse_first is not None,
        "collapse_iterations": loop.collapse_iterations,
        "collapse_first_iteration": loop.collapse_first,
        "top_class_frac_max": loop.top_class_frac_max,
        "rollbacks": loop.rollbacks,
        **signal_summary(loop.accs, loop.signal),
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


def _track_collapse(loop: LoopState, frac: float | None, n: int, cfg: DistillConfig, write_row) -> None:
    """Mode-collapse detection on the log window's mean top-class fraction (``methods.base.top_class_fraction``).

    A collapse is ``collapse_patience`` or more consecutive iterations whose windows have a mean fraction of at
    least ``collapse_threshold``; each one is logged once (kind "collapse") and counted in the summary.
    """
    if frac is None:  # methods without a generator objective (noise) have no such statistic
        return
    loop.top_class_frac_max = max(loop.top_class_frac_max, frac)
    if frac < cfg.collapse_threshold:
        loop.collapse_run = 0
        return
    before = loop.collapse_run
    loop.collapse_run += n
    if loop.collapse_run >= cfg.collapse_patience:
        if before < cfg.collapse_patience:  # this window crossed the patience: report the collapse once
            loop.collapse_iterations += loop.collapse_run
            start = loop.done - loop.collapse_run
            if loop.collapse_first is None:
                loop.collapse_first = start
            write_row({"kind": "collapse", "iteration": loop.done, "since": start, "top_class_frac": frac})
            print(f"\ndfkd: generator mode collapse: the teacher puts >= {cfg.collapse_threshold:.0%} of each "
                  f"synthetic batch in one class since iteration {start}", file=sys.stderr)
        else:
            loop.collapse_iterations += n


__all__ = ["distill", "DistillResult", "resolve_config"]
