"""Numeric precision of the forward passes, per device (``dfkd.device.choose_precision``): bf16 autocast, fp16
autocast with a gradient scaler, or full fp32. Losses are computed in fp32 in every mode.

    amp = Precision("bf16", device)
    with amp.autocast():
        loss = f(model(x)).float()
    amp.minimize(loss, [optimizer])         # zero grads, backward, step (fp16: scaled, unscaled, scale updated)
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable

import torch

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def precision_context(bf16: bool | str, device: torch.device | str = "cpu"):
    """The autocast context of a precision (``bf16``/``fp16``/``fp32``, or a bool for bf16) on ``device``."""
    kind = ("bf16" if bf16 else "fp32") if isinstance(bf16, bool) else bf16
    device_type = torch.device(device).type
    if kind == "fp32" or device_type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=_DTYPES[kind])


class Precision:
    """One precision on one device: its autocast context and, for fp16, the gradient scaler of its backward
    passes (one scaler for every optimizer stepped under this precision; its state is checkpointed)."""

    def __init__(self, kind: str, device: torch.device) -> None:
        if kind not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be bf16, fp16 or fp32, got {kind!r}")
        self.kind, self.device = kind, torch.device(device)
        self.scaler = torch.amp.GradScaler(self.device.type) if kind == "fp16" else None

    def autocast(self):
        return precision_context(self.kind, self.device)

    __call__ = autocast

    def minimize(self, loss: torch.Tensor, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """One update of every optimizer on ``loss``: gradients zeroed (set to None), ``loss.backward()``, a step
        of each; with fp16 the loss is scaled, the gradients unscaled before each step, a step with non-finite
        gradients skipped, and the scale updated once."""
        optimizers = list(optimizers)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            for opt in optimizers:
                opt.step()
            return
        self.scaler.scale(loss).backward()
        for opt in optimizers:
            self.scaler.step(opt)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


__all__ = ["Precision", "precision_context"]
