"""Generator mode-collapse detection from the logged top-class fraction (``synthesizers.base.top_class_fraction``)."""
from __future__ import annotations

import sys
from typing import Any, Callable

from ..methods import DistillConfig
from .run_state import LoopState


def track_collapse(loop: LoopState, frac: float | None, n: int, cfg: DistillConfig,
                   write_row: Callable[[dict[str, Any]], None], verbose: bool = True) -> None:
    """Mode-collapse detection on the log window's mean top-class fraction (``synthesizers.base.top_class_fraction``).

    A collapse is ``collapse_patience`` or more consecutive iterations whose windows have a mean fraction of at
    least ``collapse_threshold``; each one is logged once (kind "collapse") and counted in the summary.
    """
    if frac is None:  # methods without a generator objective (noise) have no such statistic
        return
    loop.top_class_frac_max = max(loop.top_class_frac_max, frac)
    if frac < cfg.collapse_threshold:
        loop.collapse_run = 0
        return
    before = loop.collapse_run
    loop.collapse_run += n
    if loop.collapse_run >= cfg.collapse_patience:
        if before < cfg.collapse_patience:  # this window crossed the patience: report the collapse once
            loop.collapse_iterations += loop.collapse_run
            start = loop.done - loop.collapse_run
            if loop.collapse_first is None:
                loop.collapse_first = start
            write_row({"kind": "collapse", "iteration": loop.done, "since": start, "top_class_frac": frac})
            if verbose:
                print(f"\ndfkd: generator mode collapse: the teacher puts >= {cfg.collapse_threshold:.0%} of each "
                      f"synthetic batch in one class since iteration {start}", file=sys.stderr)
        else:
            loop.collapse_iterations += n


__all__ = ["track_collapse"]
