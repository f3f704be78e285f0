"""The run's final synthetic (and replayed) samples, written as uint8 images for ``dfkd plot``."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.info import DatasetInfo
from ..io_utils import atomic_write
from ..methods import Method
from ..parts import keep_buffers


def save_sample_grid(method: Method, info: DatasetInfo, path: Path, n: int = 64) -> None:
    """``n`` fresh novel samples (and replayed ones, for the replay methods) in pixel space, saved atomically."""
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        return (info.denormalize(x.float()) * 255).round().to(torch.uint8).cpu().contiguous()

    with torch.no_grad(), keep_buffers(method.modules().values()):
        grids = {"novel": to_uint8(method.sample_novel(n))}
        replay = method.sample_replay(n)
        if replay is not None and replay.shape[0]:
            grids["replay"] = to_uint8(replay)
    atomic_write(path, lambda tmp: torch.save(grids, tmp))
