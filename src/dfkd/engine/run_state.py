"""Full-state run checkpoints (``state.pt``): everything needed to continue a run as if it never stopped.

A checkpoint holds the method's trainable parts and optimizers (student, generator, VAE or memory bank,
their learning-rate scales), the loop's own state (iterations done, the loss sums of the current log window,
the accuracies so far, how many ``metrics.jsonl`` rows belong to it, elapsed time, collapse tracking) and the
RNG states of torch, numpy and Python. Every value is a tensor, number, string, list or dict, so it loads
with ``torch.load(weights_only=True)``; writing goes through ``atomic_write`` (temp file, fsync, rename), so
the previous checkpoint stays intact until the new one is complete.

Resuming from it on the same machine and thread count reproduces the uninterrupted run bit for bit: the
learning-rate schedules are pure functions of the iteration, and every random draw comes from the restored
global RNGs.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..device import to_cpu
from ..errors import DfkdError
from ..io_utils import atomic_write
from ..rng import rng_state

STATE_FILE = "state.pt"
STATE_KIND = "dfkd-run-state"
STATE_VERSION = 1


@dataclass
class LoopState:
    """The loop's variables that a resumed (or rolled-back) run must get back exactly."""

    done: int = 0  # iterations completed
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # loss sums of the open log window
    n_sum: int = 0
    accs: list[float] = field(default_factory=list)  # test accuracies so far (reporting only)
    signal: list[float] = field(default_factory=list)  # data-free progress signal (agree_novel) so far
    rows: int = 0  # metrics.jsonl rows written up to this state
    teacher_acc: float | None = None
    elapsed: float = 0.0  # wall seconds of the iterations done (all sessions)
    eval_seconds: float = 0.0
    collapse_run: int = 0  # consecutive iterations with a collapsed synthetic batch
    collapse_iterations: int = 0  # iterations counted as collapsed over the whole run
    collapse_first: int | None = None  # iteration at which the first collapse was reported
    top_class_frac_max: float = 0.0
    rollbacks: int = 0  # non-finite events over the whole run

    def copy(self) -> "LoopState":
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # a deep copy: tensors, lists and dicts included

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LoopState":
        return cls(**d)


def snapshot(method, loop: LoopState) -> dict[str, Any]:
    """An in-memory copy of the method and loop state (no RNG: a rollback should not replay the same draws)."""
    return {"method": copy.deepcopy(method.state_dict()), "loop": loop.copy()}


def restore(method, snap: dict[str, Any]) -> LoopState:
    method.load_state_dict(snap["method"])
    return snap["loop"].copy()


def save_run_state(path: Path, method, loop: LoopState, resolved: dict[str, Any],
                   rngs: list[dict[str, Any]] | None = None) -> None:
    """Write ``state.pt`` atomically; ``resolved`` is the run's config.yaml content (checked on resume) and
    ``rngs`` the RNG states of every rank (default: this process's only)."""
    rngs = rngs if rngs is not None else [rng_state()]
    payload = to_cpu({"kind": STATE_KIND, "format_version": STATE_VERSION, "resolved": resolved,
                      "method_state": method.state_dict(), "loop": loop.to_dict(), "rng": rngs,
                      "world_size": len(rngs)})  # CPU tensors: the run resumes on any device
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_run_state(path: Path) -> dict[str, Any]:
    """Read a ``state.pt`` (weights only), with one clear error for a truncated, corrupt or foreign file."""
    hint = "start the run over with --overwrite"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle opcode, refused global ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DfkdError(f"run checkpoint '{path}' is truncated or corrupt ({first[:160]}); {hint}") from None
    if not isinstance(payload, dict) or payload.get("kind") != STATE_KIND:
        raise DfkdError(f"'{path}' is not a dfkd run checkpoint; {hint}")
    if payload.get("format_version") != STATE_VERSION:
        raise DfkdError(f"run checkpoint '{path}' has format version {payload.get('format_version')}, this dfkd "
                        f"reads {STATE_VERSION}; {hint}")
    return payload


def non_finite(method, sums: dict[str, torch.Tensor]) -> list[str]:
    """Names of the non-finite loss sums and of the modules holding a non-finite parameter or buffer."""
    bad = [k for k, v in sums.items() if not bool(torch.isfinite(v).all())]
    for name, module in method.modules().items():
        tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            bad.append(f"{name} weights")
    return bad


def offending_optimizers(method, bad: list[str]) -> list[str]:
    """Which optimizers' learning rates to lower for these non-finite names (all of them when unclear)."""
    names = list(method.optimizers())
    hit = set()
    for key in bad:
        owner = key.removesuffix(" weights") if key.endswith(" weights") else method.owner_of(key)
        if owner in names:
            hit.add(owner)
    return [n for n in names if n in hit] or names


__all__ = ["LoopState", "STATE_FILE", "save_run_state", "load_run_state", "snapshot", "restore", "non_finite",
           "offending_optimizers"]
