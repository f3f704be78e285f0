"""The run's final synthetic (and replayed) samples, written as uint8 images for ``dfkd plot``, and what the
teacher makes of them (the diagnostics to read before tuning anything: class balance, confidence, pixel range).

Statistics of a batch of ``n`` images x (as saved, i.e. after uint8 quantisation), with p = softmax(T(x)):
    teacher_class_counts[k] = #{i : argmax_k p_i = k}
    class_entropy           = H(counts / n) / ln K          (1: every class equally often; 0: one class)
    top_class_frac          = max_k counts[k] / n
    teacher_confidence      = mean_i max_k p_ik
    pixel_mean / pixel_min / pixel_max, saturated_frac     (pixels in [0, 1]; saturated: exactly 0 or 1)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..data.info import DatasetInfo
from ..io_utils import atomic_write
from ..methods import Method
from ..models.train_modes import eval_mode
from ..parts import keep_buffers, module_device


@torch.no_grad()
def sample_statistics(teacher: nn.Module, info: DatasetInfo, images: torch.Tensor) -> dict[str, Any]:
    """The statistics of the module docstring for uint8 images (N, C, H, W) on any device; the teacher runs in
    eval mode in fp32 on its own device."""
    n, k = images.shape[0], info.num_classes
    if n == 0:
        return {"n": 0}
    x = info.normalize(images.to(module_device(teacher)))
    with eval_mode(teacher):
        p = teacher(x).float().softmax(1)
    counts = torch.bincount(p.argmax(1), minlength=k).cpu()
    q = counts.double() / n
    entropy = -(q[q > 0] * q[q > 0].log()).sum().item() / math.log(k) if k > 1 else 1.0
    pixels = images.float() / 255.0
    return {
        "n": n,
        "teacher_class_counts": counts.tolist(),
        "class_entropy": round(entropy, 4),
        "top_class_frac": round(q.max().item(), 4),
        "teacher_confidence": round(p.max(1).values.mean().item(), 4),
        "pixel_mean": round(pixels.mean().item(), 4),
        "pixel_min": round(pixels.min().item(), 4),
        "pixel_max": round(pixels.max().item(), 4),
        "saturated_frac": round(((images == 0) | (images == 255)).float().mean().item(), 4),
    }


def save_sample_grid(method: Method, info: DatasetInfo, path: Path, n: int = 64) -> dict[str, dict[str, Any]]:
    """``n`` fresh novel samples (and replayed ones, for the replay methods) in pixel space, saved atomically.
    Returns each panel's ``sample_statistics`` (``{"novel": ..., "replay": ...}``)."""
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        return (info.denormalize(x.float()) * 255).round().to(torch.uint8).cpu().contiguous()

    with torch.no_grad(), keep_buffers(method.modules().values()):
        grids = {"novel": to_uint8(method.sample_novel(n))}
        replay = method.sample_replay(n)
        if replay is not None and replay.shape[0]:
            grids["replay"] = to_uint8(replay)
    atomic_write(path, lambda tmp: torch.save(grids, tmp))
    return {name: sample_statistics(method.teacher, info, images) for name, images in grids.items()}
