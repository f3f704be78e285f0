"""A progress signal that needs no real data: teacher-student agreement on synthetic batches.

The paper's premise is that the user has no validation data, so test accuracy is not available to them.
What is available: the teacher, the generator and (for the replay methods) the replay memory. At every
evaluation boundary the loop draws *fresh* batches the student was never trained on, from an RNG of its own
(so the training's random stream, and hence the run, is unchanged by measuring) and reports

    agree_novel   % of a fresh generator batch on which argmax S(x) == argmax T(x)
    agree_replay  the same on a fresh replay batch (VAE decodes / memory-bank draws), replay methods only

How well this tracks the real test accuracy (Spearman rank correlation over a run's curve) and what
stopping on it would give are measured by the benchmarks (``signal_spearman``, ``acc_at_best_signal``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..models.train_modes import eval_mode
from ..parts import keep_buffers


@torch.no_grad()
def _agreement(method, x: torch.Tensor) -> float:
    with method.precision(), eval_mode(method.output_student):
        t = method.teacher(x).argmax(1)
        s = method.output_student(x).argmax(1)
    return 100.0 * (t == s).float().mean().item()


def synthetic_agreement(method, n: int, seed: int) -> dict[str, float]:
    """Agreement on ``n`` fresh novel (and replay) samples, drawn with ``torch.Generator().manual_seed(seed)``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    with keep_buffers(method.modules().values()):  # the run's generator/VAE buffers stay as training left them
        out = {"agree_novel": _agreement(method, method.sample_novel(n, generator=g))}
        x = method.sample_replay(n, generator=g)
        if x is not None and x.shape[0] > 0:
            out["agree_replay"] = _agreement(method, x)
    return out


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # ties share their average rank
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of the ranks); NaN when either side is constant."""
    if len(a) != len(b) or len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")


def signal_summary(accs: Sequence[float], signal: Sequence[float]) -> dict[str, float]:
    """How the signal relates to the (reporting-only) test accuracy over one run's evaluations."""
    if not signal:
        return {}
    best = max(range(len(signal)), key=lambda i: signal[i])  # last-resort tie-break: the earliest
    out = {"agree_novel_final": signal[-1], "agree_novel_best_iteration_index": best}
    if accs and len(accs) == len(signal):
        out["signal_spearman"] = spearman(signal, accs)
        out["acc_at_best_signal"] = accs[best]
    return out


__all__ = ["synthetic_agreement", "spearman", "signal_summary"]
