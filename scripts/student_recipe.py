"""The suites' student recipe for the research scripts (``probe_run.py``, ``kd_real.py``): not part of the library.

SGD lr 0.1, momentum 0.9, weight decay 5e-4 (or Adam), cosine to 0, L_S = mean |S(x) - T(x)| on the logits, or
KL(softmax(T/τ) || softmax(S/τ)) τ² with ``--loss kl --temperature τ``. fp32, for comparisons, not for speed.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
import torch.nn.functional as F


def add_recipe_arguments(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--loss", choices=("l1", "kl"), default="l1")
    p.add_argument("--temperature", type=float, default=1.0)


def train_student(student: torch.nn.Module, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                  args: argparse.Namespace,
                  report: Callable[[int, float, torch.Tensor, torch.Tensor, float], None]) -> None:
    """``args.steps`` updates of ``student`` on ``draw()`` -> (inputs, teacher logits); ``report(step, loss,
    student logits, teacher logits, seconds)`` after each quarter of them."""
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(student.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    else:
        opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, args.steps))
    t0 = time.perf_counter()
    for i in range(args.steps):
        x, t = draw()
        s = student(x)
        if args.loss == "l1":
            loss = (s - t).abs().mean()
        else:
            tau = args.temperature
            loss = F.kl_div((s / tau).log_softmax(1), (t / tau).log_softmax(1), log_target=True,
                            reduction="batchmean") * tau * tau
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (i + 1) % max(1, args.steps // 4) == 0:
            report(i + 1, loss.item(), s.detach(), t, time.perf_counter() - t0)
