"""The classifier interface every zoo model follows, and feature access for any ``nn.Module``.

Zoo models split ``forward`` into ``forward_features`` (penultimate features, (B, F)) and ``forward_head``
(logits, (B, K)), so the DAFL activation prior gets features and logits from a single pass while plain
``model(x)`` still returns logits. A user's own module without that split gets the input of its last
``nn.Linear`` layer through a forward hook instead.
"""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _last_linear(model: nn.Module) -> nn.Linear | None:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


def logits_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, K), penultimate features (B, F)) from one forward pass of ``model``."""
    if isinstance(model, Classifier) or (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        features = model.forward_features(x)
        return model.forward_head(features), features
    head = _last_linear(model)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no forward_features/forward_head and no nn.Linear layer; "
                         "its penultimate features cannot be found")
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, captured[-1].flatten(1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
