"""``--tensorboard``: the run's metrics and sample grids as TensorBoard event files in ``RUN_DIR/tb/``.

``metrics.jsonl`` stays the one source of truth: this writer receives exactly the rows the loop writes there and
turns them into scalars (``train/<key>`` per logged iteration, ``eval/test_acc``, ``eval/agree_novel``,
``eval/agree_replay``, ``eval/teacher_acc``) and text (rollback and collapse events). At each evaluation it also
adds grids of fresh novel samples and of replayed ones (``samples/novel``, ``samples/replay``), drawn from an RNG
of their own with every buffer restored, so watching a run never changes it. On resume, events from after the
checkpoint are dropped (``purge_step``), as ``metrics.jsonl`` drops its rows.

    tensorboard --logdir runs/            # then open http://localhost:6006
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data.info import DatasetInfo
from ..errors import DfkdError
from ..parts import keep_buffers

_SKIP = {"kind", "iteration", "wall_seconds"}


def summary_writer_class():
    """torch's SummaryWriter, or one line naming the missing package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise DfkdError("--tensorboard needs the 'tensorboard' package: pip install 'dfkd[tensorboard]'") from None
    return SummaryWriter


class TensorBoardLog:
    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        self.writer = summary_writer_class()(str(log_dir), purge_step=purge_step)

    def write(self, record: dict[str, Any]) -> None:
        """One row of ``metrics.jsonl``."""
        kind, step = record.get("kind"), record.get("iteration", 0)
        if kind in ("train", "eval"):
            for key, value in record.items():
                if key not in _SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)
        elif kind == "teacher":
            self.writer.add_scalar("eval/teacher_acc", record["test_acc"], 0)
        elif kind in ("rollback", "collapse", "run"):
            self.writer.add_text(kind, json.dumps(record), step)

    @torch.no_grad()
    def samples(self, method, info: DatasetInfo, step: int, n: int = 64, seed: int = 0) -> None:
        """Grids of ``n`` fresh novel samples and ``n`` replayed ones (methods with replay) at ``step``."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        with keep_buffers(method.modules().values()):
            grids = {"novel": method.sample_novel(n, generator=g), "replay": method.sample_replay(n, generator=g)}
        for name, x in grids.items():
            if x is not None and x.shape[0]:
                self.writer.add_images(f"samples/{name}", info.denormalize(x.float()).cpu(), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


__all__ = ["TensorBoardLog", "summary_writer_class"]
