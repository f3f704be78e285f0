"""Where a run computes, and in which precision.

    device = resolve_device("auto")            # cuda (this rank's GPU under torchrun), else mps, else cpu
    amp = choose_precision(device, enabled=True)  # "bf16" | "fp16" | "fp32"

Precision per device (``bf16: true``, the default; ``bf16: false`` is fp32 everywhere):

| device | precision | why |
| --- | --- | --- |
| CPU with native bf16 (AVX-512-BF16 or AMX) | bf16 autocast | bf16 convolutions run several times faster |
| any other CPU (AVX2, ARM, ...) | fp32 | PyTorch emulates bf16 there: autocast runs 7-18x slower than fp32 |
| CUDA, compute capability >= 8.0 (Ampere, Hopper, ...) | bf16 autocast | bf16 tensor cores, fp32 range |
| CUDA before Ampere (V100, T4, ...) | fp16 autocast + gradient scaler | no fast bf16; fp16 needs loss scaling |
| Apple MPS | fp32 | autocast on MPS is the least tested path in PyTorch; correctness first |

``amp_dtype`` in the config overrides the automatic choice (``bfloat16`` or ``float16``) where the device has it.

Everything the loop keeps across devices is device-free: checkpoints hold CPU tensors and load with
``map_location``; random draws come from the host's global RNG (``dfkd.rng``), so the same seed gives the same
samples on every device.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .errors import DfkdError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """The device a run computes on. ``auto``: CUDA, then MPS, then the CPU. Under torchrun a bare ``cuda``
    (or ``auto`` on a GPU node) means this process's GPU, ``cuda:LOCAL_RANK``. Unavailable devices are refused
    with one line."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if spec == "auto":
        if torch.cuda.is_available():
            spec = "cuda"
        elif _mps_available():
            spec = "mps"
        else:
            spec = "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DfkdError(f"unknown device '{spec}'; choose one of {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DfkdError(f"device '{spec}' asked for, but PyTorch sees no CUDA GPU (torch {torch.__version__}, "
                            f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu or auto")
        count = torch.cuda.device_count()
        index = device.index if device.index is not None else local_rank
        if index >= count:
            why = (f"local rank {local_rank} needs GPU {index}" if device.index is None
                   else f"GPU {index} asked for")
            raise DfkdError(f"{why}, but this machine has {count} GPU(s); start at most {count} processes per node")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DfkdError(f"device '{spec}' asked for, but Apple MPS is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise DfkdError(f"unsupported device '{spec}'; choose one of {DEVICE_CHOICES}")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (x86 AVX-512-BF16 or AMX tiles). Elsewhere oneDNN emulates
    bf16: on a 2-core AVX2 AMD EPYC a bf16-autocast convolution ran 7-18x slower than the fp32 one (measured
    2026-11-26), so the automatic choice there is fp32."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # private, so probed defensively
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except (RuntimeError, AttributeError):
            continue
    return False


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is fast and supported on ``device``."""
    if device.type == "cpu":
        return cpu_has_native_bf16()
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return False


def choose_precision(device: torch.device, enabled: bool, amp_dtype: str = "auto") -> str:
    """``bf16``, ``fp16`` (autocast + gradient scaler) or ``fp32`` for ``device`` (the module docstring's table).
    ``enabled`` false (``bf16: false``) is fp32 everywhere."""
    if not enabled or device.type in ("mps", "meta"):
        return "fp32"
    if amp_dtype == "bfloat16":
        return "bf16"
    if amp_dtype == "float16":
        return "fp16"
    if bf16_supported(device):
        return "bf16"
    return "fp16" if device.type == "cuda" else "fp32"


def device_name(device: torch.device) -> str:
    """A human-readable description: ``cuda:0 (NVIDIA H200)``, ``cpu``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (host memory) on ``device``: pinned and non-blocking to a GPU, so the host never waits for the copy."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def to_cpu(obj: Any) -> Any:
    """A copy of a nested dict/list/tuple of tensors with every tensor on the CPU (checkpoints are device-free)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu() if obj.device.type != "cpu" else obj
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (timing on an asynchronous GPU); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


__all__ = ["DEVICE_CHOICES", "bf16_supported", "choose_precision", "cpu_has_native_bf16", "device_name",
           "resolve_device", "synchronize", "to_cpu", "to_device"]
