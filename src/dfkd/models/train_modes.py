"""Temporary and permanent changes of a module's training state: eval mode, frozen parameters, weight averages."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, momentum: float) -> None:
    """``ema <- momentum * ema + (1 - momentum) * model`` for the parameters; buffers (BatchNorm statistics,
    spectral norm's vectors) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - momentum)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily put ``module`` in eval mode (BatchNorm uses, and does not update, running statistics)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@contextlib.contextmanager
def frozen_params(module: nn.Module) -> Iterator[None]:
    """Gradients flow *through* ``module`` to its input, but none are computed for its parameters."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
