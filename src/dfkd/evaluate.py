"""Accuracy of a classifier on in-memory uint8 images (the real test set: for reporting only)."""
from __future__ import annotations

import torch
from torch import nn

from .data.info import DatasetInfo
from .device import to_device
from .parts import module_device
from .precision import precision_context


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, info: DatasetInfo, batch_size: int = 1000,
            bf16: bool | str = False, device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted class (N,) on the host for uint8 images (N, C, H, W) on the host; the model is put in eval mode
    and restored. Batches move to ``device`` (default: the model's) one at a time, as uint8. ``bf16``: a
    precision (``bf16``/``fp16``/``fp32``) or a bool for bf16."""
    device = torch.device(device) if device is not None else module_device(model)
    was_training = model.training
    model.eval()
    preds = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = info.normalize(to_device(images[start : start + batch_size], device))
            with precision_context(bf16, device):
                preds.append(model(x).argmax(1))
    finally:
        model.train(was_training)
    return torch.cat(preds).cpu() if preds else torch.empty(0, dtype=torch.long, device="cpu")


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
             batch_size: int = 1000, bf16: bool | str = False, per_class: bool = False,
             device: torch.device | str | None = None, confusion: bool = False) -> dict:
    """``{"accuracy": percent, "n": N}`` plus ``"per_class": {name: percent}`` and ``"confusion"`` (K x K image
    counts, row = true class, column = predicted class) when asked."""
    pred = predict(model, images, info, batch_size, bf16, device)
    correct = pred == labels
    out: dict = {"accuracy": 100.0 * correct.float().mean().item() if len(labels) else 0.0, "n": int(len(labels))}
    if per_class:
        out["per_class"] = {
            info.class_names[c]: (100.0 * correct[labels == c].float().mean().item() if (labels == c).any() else None)
            for c in range(info.num_classes)
        }
    if confusion:
        k = info.num_classes
        counts = torch.bincount(labels.long().cpu() * k + pred.long(), minlength=k * k)
        out["confusion"] = counts.view(k, k).tolist()
    return out
