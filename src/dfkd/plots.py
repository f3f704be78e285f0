"""Figures read from run directories (``metrics.jsonl``, ``summary.json``, ``samples.pt``), never from the loop.

- ``accuracy.png``: test accuracy over iterations; runs of one method (several seeds) as a mean line with a
  min-max band;
- ``accuracy-time.png``: the same against the run's wall-clock seconds (time to accuracy: which method gets
  where fastest; the fair comparison between methods whose iterations differ, such as a generator step and a
  synthesis round);
- ``samples-<run>.png``: a grid of novel synthetic samples, and for replay methods the replayed samples
  next to them (``<run>`` is the run directory's name, with as many of its parents' names in front as it takes
  to tell it from the other runs plotted).

A curve is one method's runs with the same settings: runs of one method whose configs differ in anything but the
seed and the run's bookkeeping (``REPORTING_KEYS``) are separate curves, labelled with what differs
(``dfad, w_info_entropy=5.0``), so an ablation is never averaged into one line. A setting a run's config does not
record (the run predates the option) counts as the method's default, as it does when such a run is resumed.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DfkdError
from .metrics_log import read_metrics

# Config keys that do not change what a run computes or where it is evaluated: runs that differ only in these (and
# in the seed) are seeds of one curve.
REPORTING_KEYS = frozenset({"seed", "log_every", "eval_batch_size", "checkpoint_every", "max_rollbacks",
                            "collapse_threshold", "collapse_patience", "dist_timeout_s"})


def _config_defaults(method: str) -> dict[str, Any]:
    """The method's config defaults (what ``open_run_dir`` fills into a resumed run that predates a key); an
    unregistered method name (a run directory's name stood in for it) gets ``DistillConfig``'s."""
    from .config import to_plain
    from .methods import METHODS, DistillConfig

    return to_plain((METHODS.get(method).Config if method in METHODS.names() else DistillConfig)())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def load_run(run_dir: str | os.PathLike) -> dict:
    d = Path(run_dir)
    if not (d / "metrics.jsonl").exists():
        raise DfkdError(f"'{d}' is not a distillation run (no metrics.jsonl)")
    rows = read_metrics(d / "metrics.jsonl")
    evals = [r for r in rows if r.get("kind") == "eval" and "test_acc" in r]
    summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else {}
    teacher = next((r["test_acc"] for r in rows if r.get("kind") == "teacher"), summary.get("teacher_acc"))
    config = {}
    if (d / "config.yaml").exists():
        import yaml

        config = yaml.safe_load((d / "config.yaml").read_text()) or {}
    method = summary.get("method") or config.get("method")
    return {"dir": d, "method": method or d.name, "student": config.get("student_arch"),
            "settings": config.get("config") or {},
            "iterations": [r["iteration"] for r in evals],
            "seconds": [r.get("wall_seconds", float("nan")) for r in evals],
            "acc": [r["test_acc"] for r in evals], "teacher_acc": teacher, "summary": summary}


def _setting(value: Any) -> str:
    """A config value as a curve label shows it, exactly (the label is the grouping key: floats by their round-trip
    repr, a dict's keys sorted, so equal settings get equal labels and different ones never share one)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_setting(value[k])}" for k in sorted(value)) + "}"
    return repr(value) if isinstance(value, float) else str(value)


def curve_groups(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs with evaluations, one group (one curve, its seeds averaged) per method and settings: the label is
    the method, then the student architecture when the runs have more than one, then ``key=value`` for each
    setting that differs among that method's runs (``REPORTING_KEYS`` aside)."""
    runs = [r for r in runs if r["acc"]]
    students = {r.get("student") for r in runs}
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_method[f"{r['method']}, {r.get('student')}" if len(students) > 1 else r["method"]].append(r)
    groups: dict[str, list[dict]] = defaultdict(list)
    for name, members in by_method.items():
        defaults = _config_defaults(members[0]["method"])
        values = [{k: _setting(v) for k, v in {**defaults, **r.get("settings", {})}.items()} for r in members]
        keys = sorted({k for r in members for k in r.get("settings", {})} - REPORTING_KEYS)
        varied = [k for k in keys if len({v.get(k) for v in values}) > 1]
        for r, v in zip(members, values):
            groups[", ".join([name] + [f"{k}={v.get(k)}" for k in varied])].append(r)
    return dict(groups)


def plot_accuracy(runs: list[dict], path: Path, title: str = "", x: str = "iterations") -> Path:
    """Accuracy against ``x``: "iterations" or "seconds" (wall clock, mean over seeds at each evaluation)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, members in sorted(curve_groups(runs).items()):
        n = min(len(r["acc"]) for r in members)  # align seeds on their common evaluations
        its = np.asarray(members[0]["iterations"][:n]) if x == "iterations" else \
            np.asarray([r["seconds"][:n] for r in members]).mean(0)
        curves = np.asarray([r["acc"][:n] for r in members])
        mean = curves.mean(0)
        (line,) = ax.plot(its, mean, label=f"{label} (n={len(members)})", lw=1.8)
        if len(members) > 1:
            ax.fill_between(its, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2, lw=0)
    teachers = [r["teacher_acc"] for r in runs if r["teacher_acc"] is not None]
    if teachers:
        ax.axhline(float(np.mean(teachers)), color="k", ls="--", lw=1, label="teacher")
    ax.set_xlabel("iteration" if x == "iterations" else "wall-clock seconds")
    ax.set_ylabel("student test accuracy (%)")
    ax.set_title(title or "data-free distillation: accuracy during training (reporting only)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _grid(images: torch.Tensor, cols: int = 8) -> np.ndarray:
    """uint8 (N, C, H, W) -> one (rows*H, cols*W[, C]) image with 1-pixel gaps."""
    n, c, h, w = images.shape
    rows = (n + cols - 1) // cols
    canvas = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, c), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[r * (h + 1): r * (h + 1) + h, k * (w + 1): k * (w + 1) + w] = images[i].permute(1, 2, 0).numpy()
    return canvas[..., 0] if c == 1 else canvas


def describe_statistics(stats: dict[str, Any]) -> str:
    """Two short lines for a plot caption: 'teacher: 10/10 classes, top 16%, conf 0.91' and the pixels
    (``dfkd.engine.samples.sample_statistics``, kept in each run's summary.json)."""
    if not stats.get("n"):
        return "no samples"
    seen = sum(1 for c in stats["teacher_class_counts"] if c > 0)
    return (f"teacher: {seen}/{len(stats['teacher_class_counts'])} classes, top {100 * stats['top_class_frac']:.0f}%, "
            f"conf {stats['teacher_confidence']:.2f}\npixels: mean {stats['pixel_mean']:.2f}, "
            f"range {stats['pixel_min']:.2f}-{stats['pixel_max']:.2f}, {100 * stats['saturated_frac']:.0f}% at 0 or 1")


def plot_samples(run: dict, path: Path) -> Path | None:
    samples_file = run["dir"] / "samples.pt"
    if not samples_file.exists():
        return None
    grids = torch.load(samples_file, map_location="cpu", weights_only=True)
    plt = _pyplot()
    panels = [(k, grids[k]) for k in ("novel", "replay") if k in grids]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], panels):
        ax.imshow(_grid(imgs), cmap="gray" if imgs.shape[1] == 1 else None, vmin=0, vmax=255)
        ax.set_title({"novel": "novel (generator)", "replay": "replayed (memory)"}[name], fontsize=10)
        ax.axis("off")
        stats = run["summary"].get("samples", {}).get(name)
        if stats:  # what the teacher makes of these very images (runs before 2026-11-26 have no statistics)
            ax.text(0.5, -0.02, describe_statistics(stats), transform=ax.transAxes, ha="center", va="top", fontsize=7)
    fig.suptitle(f"{run['method']}: {run['dir'].name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the captions sit below the axes
    plt.close(fig)
    return path


def plot_runs(run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, title: str = "") -> list[Path]:
    runs = [load_run(d) for d in run_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_accuracy(runs, out / "accuracy.png", title),
               plot_accuracy(runs, out / "accuracy-time.png", title, x="seconds")]
    for r, name in zip(runs, figure_names([r["dir"] for r in runs])):
        p = plot_samples(r, out / f"samples-{name}.png")
        if p is not None:
            written.append(p)
    return written


def figure_names(dirs: list[Path]) -> list[str]:
    """A distinct name per run directory: its own name, with its parents' names in front (``base-dfad-s0``) as far up
    as it takes to tell it from the others, so two runs of one name (bench's ``dfad-s0`` under two screens, or under
    two ``seed-a/screen`` and ``seed-b/screen``) each keep a figure. The same directory given twice gets one name."""
    parts = [Path(d).resolve().parts for d in dirs]
    names = []
    for p in parts:
        depth = 1
        while depth < len(p) and any(q != p and q[-depth:] == p[-depth:] for q in parts):
            depth += 1
        names.append("-".join(x for x in p[-depth:] if x != "/"))
    return names
