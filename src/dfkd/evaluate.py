"""Accuracy of a classifier on in-memory uint8 images (the real test set: for reporting only)."""
from __future__ import annotations

import torch
from torch import nn

from .data.info import DatasetInfo
from .precision import precision_context


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, info: DatasetInfo, batch_size: int = 1000,
            bf16: bool = False) -> torch.Tensor:
    """Predicted class (N,) for uint8 images (N, C, H, W); the model is put in eval mode and restored."""
    was_training = model.training
    model.eval()
    preds = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = info.normalize(images[start : start + batch_size])
            with precision_context(bf16):
                preds.append(model(x).argmax(1))
    finally:
        model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
             batch_size: int = 1000, bf16: bool = False, per_class: bool = False) -> dict:
    """``{"accuracy": percent, "n": N}`` plus ``"per_class": {name: percent}`` when asked."""
    pred = predict(model, images, info, batch_size, bf16)
    correct = pred == labels
    out: dict = {"accuracy": 100.0 * correct.float().mean().item() if len(labels) else 0.0, "n": int(len(labels))}
    if per_class:
        out["per_class"] = {
            info.class_names[c]: (100.0 * correct[labels == c].float().mean().item() if (labels == c).any() else None)
            for c in range(info.num_classes)
        }
    return out
