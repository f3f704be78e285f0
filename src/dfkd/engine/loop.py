"""The one loop every method shares: iterations, evaluation (reporting only), logging, checkpoints, resume.

    result = distill(teacher, "lenet5-half", method="dfad", config={"iterations": 500},
                     eval_data=load_dataset("fashion-mnist"), out_dir="runs/x")

Evaluation on real test data never influences training or which student is saved: the saved
``student.pt`` is always the student after the last iteration.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_model, model_payload, save_checkpoint
from ..config import to_plain, update_config
from ..data import ImageDataset
from ..data.info import DatasetInfo
from ..errors import DfkdError
from ..evaluate import accuracy
from ..io_utils import atomic_write_text
from ..methods import DistillConfig, Method, get_method
from ..metrics_log import MetricsLog
from ..models import count_parameters, create_model
from ..models.train_modes import eval_mode
from ..device import device_name
from ..distributed import collective_errors, from_environment, per_rank_config, ranks_agree
from ..parts import module_device
from ..progress import Progress
from ..rng import rng_state, seed_everything
from .collapse import track_collapse
from .progress_signal import signal_summary, synthetic_agreement
from .robustness import robustness_summary
from .run_dir import TB_DIR, open_run_dir, restore_run
from .run_state import (STATE_FILE, LoopState, non_finite, offending_optimizers, restore, save_run_state,
                        snapshot)
from .samples import save_sample_grid
from .stop import RunInterrupted, StopSignals
from .tensorboard import TensorBoardLog, summary_writer_class


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
        config = update_config(method_cls.Config(), config, where=f"'{method_cls.name}' config")
    elif not isinstance(config, method_cls.Config):
        raise DfkdError(f"config for '{method_cls.name}' must be a {method_cls.Config.__name__} or a dict")
    method_cls.check_objective_weights(config)
    return config


def _num_outputs(model: nn.Module, info: DatasetInfo, what: str) -> int:
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(torch.zeros(2, *info.input_shape, device=module_device(model)))
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
    resume: bool = False,
    device: str | torch.device = "auto",
    tensorboard: bool = False,
) -> DistillResult:
    """Distil ``teacher`` into ``student`` with ``method``, data-free.

    teacher: an ``nn.Module`` (then ``info`` is required) or the path of a dfkd teacher checkpoint.
    student: an ``nn.Module`` or a zoo name (built for the teacher's classes and input shape).
    eval_data: real test data used *only* to report accuracy every ``eval_every`` iterations (kept on the host as
        uint8, moved to the device batch by batch).
    device: ``auto`` (CUDA, else MPS, else CPU; under torchrun this rank's GPU), ``cpu``, ``cuda``, ``cuda:N``,
        ``mps``. The teacher and student are moved there; the returned student is on the CPU. Precision follows
        the device (``dfkd.device``); a run resumes on any device.
    tensorboard: also write the metrics and sample grids as TensorBoard events to ``out_dir/tb``
        (``dfkd.engine.tensorboard``; needs the ``tensorboard`` package).
    out_dir: where the run's files go (config.yaml, metrics.jsonl, state.pt every ``checkpoint_every``
        iterations, and at the end student.pt, summary.json, samples.pt). A directory that already holds a
        run is refused unless ``overwrite`` (its files are replaced, never mixed with the new run's) or
        ``resume`` (the run continues from its ``state.pt``, with the same settings, and finishes exactly as
        it would have without the interruption; with no run there, it starts fresh).

    Reliability: a non-finite loss or weight rolls the run back to the last good state (at most
    ``log_every`` iterations earlier), halves the learning rate of the part that failed and goes on with
    fresh random draws; after ``max_rollbacks`` failures in a row it stops with an error. SIGINT/SIGTERM
    finish the current iteration (under torchrun: the iterations up to the next log boundary), write a
    checkpoint and raise ``RunInterrupted``.
    """
    method_cls = get_method(method)
    cfg = resolve_config(method_cls, config)
    teacher_path = None
    if isinstance(teacher, (str, os.PathLike)):
        teacher_path = str(teacher)
        teacher, info, _ = load_model(teacher)
    if info is None:
        raise DfkdError("pass info=DatasetInfo(...) with a teacher module (or give a teacher checkpoint path)")
    cfg = method_cls.configure(cfg, teacher, info)  # what the run saves is what it runs with
    ctx = from_environment(cfg.dist_timeout_s, device)  # single process unless started by torchrun
    rank_cfg = per_rank_config(cfg, ctx)
    seed_everything(cfg.seed)  # before the student is built: the seed fixes its initial weights too
    if isinstance(student, str):
        student_arch = student
        with torch.device("cpu"):  # built on the host (seeded), moved to the run's device by the method
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
    if tensorboard and out_dir is None:
        raise DfkdError("tensorboard needs the run's output directory (out_dir / --out)")
    if tensorboard:
        summary_writer_class()  # a missing package fails before any file is touched

    teacher_device = module_device(teacher)  # the caller's teacher goes back there at the end
    m = method_cls(teacher, student, info, rank_cfg, ctx, device=ctx.device)
    if ctx.enabled:
        seed_everything(cfg.seed + 1_000_003 * ctx.rank)  # same weights everywhere, a sample stream per rank
    out = Path(out_dir) if out_dir is not None else None
    resolved = to_plain({"method": method_cls.name, "teacher": teacher_path, "student_arch": student_arch,
                         "dataset": info.name, **(extra_config or {}), "config": to_plain(cfg)})
    main = ctx.is_main
    payload, error = None, None
    if out is not None and main:
        try:
            payload = open_run_dir(out, resolved, overwrite, resume, to_plain(method_cls.Config()))
        except DfkdError as exc:
            error = str(exc)
    error = ctx.broadcast_object(error)
    if error:
        raise DfkdError(error)
    payload = ctx.broadcast_object(payload)  # on resume every rank restores the same state
    loop = restore_run(m, payload, ctx.rank, ctx.world_size) if payload is not None else LoopState()
    loop.sums = {k: v.to(m.device) for k, v in loop.sums.items()}  # a checkpoint holds CPU tensors
    log = MetricsLog(out / "metrics.jsonl") if out is not None and main else None
    # TensorBoard mirrors the rows of metrics.jsonl; on resume it drops events after the checkpoint, as the log does
    tb = (TensorBoardLog(out / TB_DIR, purge_step=loop.done + 1 if payload is not None else None)
          if tensorboard and out is not None and main else None)

    def write_row(record: dict[str, Any]) -> None:
        loop.rows += 1  # on every rank, so that every rank's loop state stays the same
        if log:
            log.write(record)
        if tb:
            tb.write(record)

    run_on = {"device": device_name(m.device), "precision": m.amp.kind, "student_precision": m.amp_student.kind}
    if loop.done == 0 and loop.rows == 0:
        write_row({"kind": "run", **run_on, "world_size": ctx.world_size})
    if eval_split is not None and loop.done == 0 and loop.teacher_acc is None and main:
        loop.teacher_acc = accuracy(m.teacher, *eval_split, info, cfg.eval_batch_size, device=m.device)["accuracy"]
        write_row({"kind": "teacher", "test_acc": loop.teacher_acc})

    if main and loop.done == 0:  # settings that will not act as set: said once, when the run starts
        for note in cfg.notices():
            print(f"dfkd: {note}", file=sys.stderr)
    bar = Progress(cfg.iterations, desc=f"{method_cls.name}", enabled=progress and main, initial=loop.done)
    session_start, elapsed_before = time.perf_counter(), loop.elapsed
    good, failures = snapshot(m, loop), 0
    try:
        with StopSignals(enabled=out is not None) as stop, collective_errors(ctx, cfg.dist_timeout_s):
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
                boundary = at_log or at_eval or at_ckpt
                # Every rank stops at the same iteration. One process checks every iteration (no cost); under
                # torchrun agreeing is a collective, a host sync, so the ranks agree at boundaries only.
                stopping = ctx.any(stop.requested) if (boundary or not ctx.enabled) else False
                if not (boundary or stopping):
                    continue
                # A boundary: the only place with host syncs. Nothing non-finite gets past it.
                loop.sums = ctx.mean(loop.sums)
                bad = non_finite(m, loop.sums)
                if ctx.any(bool(bad)):
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
                    if main:
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
                    track_collapse(loop, record.get("top_class_frac"), n, cfg, write_row, verbose=main)
                    bar.postfix.update({k: record[k] for k in ("s_loss", "g_loss") if k in record})
                if at_eval and main:  # evaluation on rank 0 only; the others wait at the next collective
                    t0 = time.perf_counter()
                    row: dict[str, Any] = {"iteration": done, "kind": "eval"}
                    if eval_split is not None:
                        row["test_acc"] = accuracy(m.output_student, *eval_split, info, cfg.eval_batch_size,
                                                   device=m.device)["accuracy"]
                        loop.accs.append(row["test_acc"])
                        bar.postfix["acc"] = row["test_acc"]
                    if cfg.signal_samples > 0:  # own RNG stream: measuring never changes the run
                        row.update(synthetic_agreement(m, cfg.signal_samples, seed=cfg.seed * 1_000_003 + done))
                        loop.signal.append(row["agree_novel"])
                        bar.postfix["agree"] = row["agree_novel"]
                    if tb:
                        tb.samples(m, info, done, seed=cfg.seed * 1_000_003 + done)
                    loop.eval_seconds += time.perf_counter() - t0
                    row["wall_seconds"] = elapsed_before + time.perf_counter() - session_start
                    write_row(row)
                loop.elapsed = elapsed_before + time.perf_counter() - session_start
                good = snapshot(m, loop)
                if at_ckpt or stopping:
                    rngs = ctx.gather_objects(rng_state())
                    if main:
                        save_run_state(out / STATE_FILE, m, loop, resolved, rngs)
                if stopping:
                    raise RunInterrupted(f"stopped by {stop.name or 'a signal to another rank'} after iteration "
                                         f"{done}/{cfg.iterations}; checkpoint saved; continue with: dfkd resume "
                                         f"{out}", stop.signum or signal.SIGTERM)
            consistent = ranks_agree(m.shared_modules(), ctx)
    finally:
        bar.close()
        m.close()  # no hook stays attached to the user's teacher
        if log:
            log.close()
        if tb:
            tb.close()

    student = m.output_student.to(device="cpu", memory_format=torch.contiguous_format)
    student.eval().requires_grad_(True)  # the weight average was frozen while it tracked the student
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
        "world_size": ctx.world_size,
        **run_on,
        "ranks_consistent": consistent,
        **signal_summary(loop.accs, loop.signal),
    }
    if out is not None and main:
        # (PRE-DFKD's replay samples need the teacher on the device); what the teacher makes of them is summarised
        summary["samples"] = save_sample_grid(m, info, out / "samples.pt")
        arch = student_arch or "custom"
        kwargs = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
        save_checkpoint(model_payload(student, arch, kwargs, info, role="student",
                                      config={"method": method_cls.name, **to_plain(cfg)}, metrics=summary),
                        out / "student.pt")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    m.teacher.to(teacher_device)  # the caller's teacher is back where it was
    ctx.close()
    return DistillResult(student, summary, m, out)


__all__ = ["distill", "DistillResult", "resolve_config"]
