"""``run_suite``: teacher (trained once, then reused), every (method, seed) run, results and figures.

Layout of a suite directory:
    teacher/teacher.pt, teacher/metrics.jsonl      the suite's teacher (reused when present)
    <method>-s<seed>/                               one distillation run each (skipped when finished)
    results.json, table.md, accuracy.png, accuracy-time.png, samples-*.png
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from ..data import dataset_info, load_dataset
from ..engine import distill
from ..engine.loop import resolve_config
from ..io_utils import atomic_write_text
from ..methods import get_method
from ..models import create_model
from ..teacher import new_teacher_model, recipe, train_teacher
from .suites import Suite
from .table import aggregate, markdown_table


def _same_settings(run_dir: Path, cfg: dict[str, Any], student_arch: str) -> bool:
    """Whether ``run_dir`` holds a run (finished or not) made with these settings and student architecture."""
    c = run_dir / "config.yaml"
    if not c.exists():
        return False
    import yaml

    resolved = yaml.safe_load(c.read_text()) or {}
    saved = resolved.get("config", {})
    return resolved.get("student_arch") == student_arch and all(
        saved.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items())


def _finished(run_dir: Path, cfg: dict[str, Any], student_arch: str) -> dict | None:
    """The summary of a finished run made with the same settings, else None (it must be (re)done)."""
    f = run_dir / "summary.json"
    if not (f.exists() and _same_settings(run_dir, cfg, student_arch)):
        return None
    return json.loads(f.read_text())


def ensure_teacher(suite: Suite, out: Path, data, progress: bool, log: Callable[[str], None],
                   device: str = "auto") -> Path:
    path = out / "teacher" / "teacher.pt"
    if path.exists():
        return path
    cfg = recipe(suite.dataset, **suite.teacher_overrides)
    model, kwargs = new_teacher_model(suite.teacher_arch, data.info, cfg.seed)
    log(f"training the {suite.teacher_arch} teacher on {suite.dataset} ({cfg.epochs} epochs) ...")
    metrics = train_teacher(model, data, cfg, arch=suite.teacher_arch, arch_kwargs=kwargs, out_dir=path.parent,
                            progress=progress, resume=True, device=device)  # an interrupted teacher run continues
    log(f"teacher test accuracy {metrics['test_acc']:.2f}%")
    return path


def run_suite(suite: Suite, out_dir: str | os.PathLike, methods: list[str] | None = None,
              seeds: list[int] | None = None, iterations: int | None = None, force: bool = False,
              progress: bool = True, data_dir: str | os.PathLike | None = None,
              log: Callable[[str], None] = print, plots: bool = True,
              overrides: dict[str, Any] | None = None, device: str = "auto") -> dict[str, Any]:
    """Train the suite's teacher if needed, then run every (method, seed) on ``device``; finished runs with the
    same settings are reused, interrupted ones resumed."""
    methods = list(methods or suite.methods)
    seeds = list(seeds if seeds is not None else suite.seeds)
    for m in methods:  # unknown names, keys or values fail before any work
        resolve_config(get_method(m), {**suite.method_overrides(m, iterations), **(overrides or {})})
    info = dataset_info(suite.dataset, data_dir)  # an unknown or unbuildable student fails before any work too
    create_model(suite.student_arch, num_classes=info.num_classes, in_channels=info.in_channels,
                 input_size=info.image_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(suite.dataset, data_dir)
    teacher = ensure_teacher(suite, out, data, progress, log, device)
    summaries, run_dirs = [], []
    total = len(methods) * len(seeds)
    for i, (method, seed) in enumerate([(m, s) for m in methods for s in seeds], 1):
        cfg = {**suite.method_overrides(method, iterations), **(overrides or {}), "seed": seed}
        run_dir = out / f"{method}-s{seed}"
        done = None if force else _finished(run_dir, cfg, suite.student_arch)
        if done is not None:
            log(f"[{i}/{total}] {method} seed {seed}: finished earlier (final {done['final']:.2f}%), skipped")
        else:
            # An interrupted run with the same settings continues from its checkpoint; anything else starts over.
            resume = not force and _same_settings(run_dir, cfg, suite.student_arch)
            log(f"[{i}/{total}] {method} seed {seed}: {cfg['iterations']} iterations"
                f"{' (resuming)' if resume and (run_dir / 'state.pt').exists() else ''} ...")
            t0 = time.perf_counter()
            done = distill(teacher, suite.student_arch, method, cfg, eval_data=data, out_dir=run_dir,
                           progress=progress, extra_config={"suite": suite.name, "eval_dataset": suite.dataset},
                           overwrite=not resume, resume=resume, device=device).summary
            log(f"[{i}/{total}] {method} seed {seed}: final {done['final']:.2f}%, mu {done['mu']:.2f} "
                f"({time.perf_counter() - t0:.0f} s)")
        summaries.append(done)
        run_dirs.append(run_dir)
    results = aggregate(summaries)
    table = markdown_table(results, methods)
    payload = {"suite": suite.name, "dataset": suite.dataset, "teacher_arch": suite.teacher_arch,
               "student_arch": suite.student_arch, "methods": methods, "seeds": seeds,
               "iterations": iterations or suite.config["iterations"], "results": results, "runs": summaries,
               "configs": {m: {**suite.method_overrides(m, iterations), **(overrides or {})} for m in methods}}
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out / "table.md", table + "\n")
    figures = []
    if plots:
        from ..plots import plot_runs

        figures = [str(p) for p in plot_runs(run_dirs, out, f"{suite.name}: {suite.teacher_arch} -> {suite.student_arch}")]
    payload["table"] = table
    payload["figures"] = figures
    return payload


__all__ = ["run_suite", "ensure_teacher"]
