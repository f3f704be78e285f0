"""Robustness metrics of an accuracy curve (PRE-DFKD, Binici et al. AAAI 2022, Sec. 5).

A user without validation data cannot pick the best snapshot, so the paper reports the whole curve:
  mu       mean of the evaluated accuracies ("expected accuracy" when stopping at a random time)
  sigma2   their (population) variance: lower is more robust
  peak     the maximum (what most papers report; unusable without validation data)
  final    the last evaluated accuracy (what a user actually gets)
  max_drop the largest fall below a running peak: max_t (max_{s<=t} a_s - a_t)
"""
from __future__ import annotations

from typing import Sequence


def robustness_summary(accuracies: Sequence[float]) -> dict[str, float]:
    a = [float(v) for v in accuracies]
    if not a:
        return {"mu": float("nan"), "sigma2": float("nan"), "peak": float("nan"), "final": float("nan"),
                "max_drop": float("nan")}
    mu = sum(a) / len(a)
    running, max_drop = a[0], 0.0
    for v in a:
        running = max(running, v)
        max_drop = max(max_drop, running - v)
    return {"mu": mu, "sigma2": sum((v - mu) ** 2 for v in a) / len(a), "peak": max(a), "final": a[-1],
            "max_drop": max_drop}
