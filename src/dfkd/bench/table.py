"""Aggregation of finished runs into results (mean +- std over seeds) and a markdown table."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

KEYS = ("mu", "sigma2", "peak", "final", "max_drop")


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, sd


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: mean and std over seeds of the robustness metrics, plus memory and time."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        by_method[s["method"]].append(s)
    out = {}
    for method, runs in by_method.items():
        row: dict[str, Any] = {"seeds": sorted(r["seed"] for r in runs), "n": len(runs)}
        for k in KEYS + ("wall_seconds", "teacher_acc", "signal_spearman", "acc_at_best_signal"):
            row[k], row[f"{k}_std"] = _mean_std([r.get(k) for r in runs])
        row["replay_memory_bytes"] = max(r.get("replay_memory_bytes", 0) for r in runs)
        row["replay_optimizer_bytes"] = max(r.get("replay_optimizer_bytes", 0) for r in runs)
        row["iterations"] = runs[0].get("iterations")
        out[method] = row
    return out


def _bytes(n: int) -> str:
    if not n:
        return "0"
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def markdown_table(results: dict[str, dict[str, Any]], order: list[str] | None = None) -> str:
    head = ("| method | seeds | mu | sigma2 | peak | final | max_drop | replay memory | wall time / run | teacher "
            "| signal rho | acc @ best signal |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    lines = [head]
    for method in order or sorted(results):
        if method not in results:
            continue
        r = results[method]
        def cell(k: str, fmt: str = ".2f") -> str:  # a single seed has no spread to show
            return f"{r[k]:{fmt}}" if r["n"] == 1 else f"{r[k]:{fmt}} ± {r[k + '_std']:{fmt}}"

        cells = [cell(k) for k in KEYS]
        def maybe(k: str) -> str:  # runs made before the progress signal existed have none
            return "—" if math.isnan(r[k]) else cell(k)

        lines.append(f"| {method} | {r['n']} | " + " | ".join(cells) + f" | {_bytes(r['replay_memory_bytes'])} | "
                     f"{cell('wall_seconds', '.0f')} s | {r['teacher_acc']:.2f} | {maybe('signal_spearman')} | "
                     f"{maybe('acc_at_best_signal')} |")
    return "\n".join(lines)
