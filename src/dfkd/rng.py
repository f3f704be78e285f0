"""The global random state of a run: seeding, saving/restoring it as plain tensors and numbers (so that
checkpoints load with ``torch.load(weights_only=True)``), and the draws of the training loops.

Host-drawn randomness: every random draw of a run (latents, pixel noise, targets, augmentation, replay indices)
comes from the host's global torch RNG, or from an explicit CPU ``torch.Generator``, and is then moved to the
run's device (pinned, non-blocking). The draws are small (a batch of latents, indices, offsets), so this costs
little; in return one seed gives the same samples on the CPU, a GPU or MPS, a checkpoint resumes on another
device with the same random stream, and the GPU self-check can compare devices iteration for iteration.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from .device import to_device


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def randn(*shape: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """N(0, 1) of ``shape`` drawn on the host (or ``generator``'s device), on ``device``."""
    t = torch.randn(*shape, generator=generator, dtype=dtype, device=_draw_device(generator))
    return to_device(t, torch.device(device))


def rand(*shape: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """U[0, 1) of ``shape`` drawn on the host (or ``generator``'s device), on ``device``."""
    return to_device(torch.rand(*shape, generator=generator, device=_draw_device(generator)), torch.device(device))


def uniform(n: int, low: float, high: float, device: torch.device | str = "cpu",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """U[low, high) of shape (n,) drawn on the host (or ``generator``'s device), on ``device``."""
    t = torch.empty(n, device=_draw_device(generator)).uniform_(low, high, generator=generator)
    return to_device(t, torch.device(device))


def randint(low: int, high: int, shape: tuple[int, ...], device: torch.device | str = "cpu",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Integers in [low, high) of ``shape`` drawn on the host (or ``generator``'s device), on ``device``."""
    t = torch.randint(low, high, shape, generator=generator, device=_draw_device(generator))
    return to_device(t, torch.device(device))


def randperm(n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """A permutation of range(n) drawn on the host (or ``generator``'s device), on ``device``."""
    return to_device(torch.randperm(n, generator=generator, device=_draw_device(generator)), torch.device(device))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch, numpy and Python as plain tensors and numbers."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "gauss": float(gauss)},
             "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64, device="cpu"),
                        "gauss": py_gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # kernels that draw on the GPU (dropout)
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():  # written on a GPU; a CPU resume has no use for it
        torch.cuda.set_rng_state(state["cuda"])


__all__ = ["rand", "randint", "randn", "randperm", "rng_state", "seed_everything", "set_rng_state", "uniform"]
