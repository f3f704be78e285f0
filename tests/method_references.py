"""Stored reference values of every method that existed before the parts redesign (issue 16).

Each case runs a few iterations of one method on tiny networks with a fixed seed and fingerprints what it
produced: a SHA-256 of every module's state (student, generator, VAE or memory bank, EMA copy) and of every
optimizer state tensor, plus the logged scalars. ``tests/test_method_references.py`` checks that the
current code reproduces them, so a refactoring that changes what a method computes cannot pass unnoticed.

Floating-point kernels round differently on different instruction sets (AVX2 against AVX-512, emulated against
native bf16), so the file keeps one set of references per CPU kind (``cpu_kind()``). Regenerate the current
CPU's set (only when a change is *meant* to alter what a method computes, and say so in the commit; other CPU
kinds' sets then need regenerating on such a CPU too):

    python tests/method_references.py
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

from dfkd import create_model
from dfkd.data import dataset_info
from dfkd.device import cpu_has_native_bf16
from dfkd.engine import distill

STORE = Path(__file__).parent / "data" / "method_references.json"

TINY = {"iterations": 3, "batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8,
        "eval_every": 2, "log_every": 1, "signal_samples": 32}
EXTRA = {"pre-dfkd": {"vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2},
         "pre-dfkd+": {"vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2},
         "mb-dfkd": {"memory_batches": 2, "memory_batch_size": 4, "push_every": 1}}
FP32 = {"bf16": False, "channels_last": False}
BF16 = {"amp_dtype": "bfloat16"}  # the bf16 path on every CPU (emulated where the CPU has no native bf16)

# (case name, method, teacher arch, data set, extra config)
CASES = [
    ("dafl-fp32", "dafl", "lenet5-half", "digits", FP32),
    ("dfad-fp32", "dfad", "lenet5-half", "digits", FP32),
    ("noise-fp32", "noise", "lenet5-half", "digits", FP32),
    ("mb-dfkd-fp32", "mb-dfkd", "lenet5-half", "digits", FP32),
    ("pre-dfkd-fp32", "pre-dfkd", "lenet5-half", "digits", FP32),
    ("pre-dfkd+-bn-cifar-fp32", "pre-dfkd+", "cnn-bn", "cifar10", FP32),
    ("dfad-ema-mixup-fp32", "dfad", "lenet5-half", "digits", {**FP32, "ema_generator": 0.9, "augment_mixup": 0.5}),
    ("dafl-bf16", "dafl", "lenet5-half", "digits", BF16),
    ("pre-dfkd-bf16", "pre-dfkd", "lenet5-half", "digits", BF16),
    ("pre-dfkd-bf16-fp32-student", "pre-dfkd", "lenet5-half", "digits", {**BF16, "bf16_student": False}),
    ("mb-dfkd-bf16", "mb-dfkd", "lenet5-half", "digits", BF16),
    ("pre-dfkd+-bn-cifar-bf16", "pre-dfkd+", "cnn-bn", "cifar10", BF16),
]


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _flat_tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _flat_tensors(obj[k])
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flat_tensors(v)


def run_case(method: str, teacher_arch: str, dataset: str, extra: dict) -> dict:
    info = dataset_info(dataset)
    kw = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
    torch.manual_seed(0)
    teacher_kw = {"width": 4} if teacher_arch == "cnn-bn" else {}
    teacher = create_model(teacher_arch, **kw, **teacher_kw)
    student = create_model("lenet5-half", **kw)
    cfg = {**TINY, **EXTRA.get(method, {}), **extra}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU kernels split reductions by thread count: pin it, so any machine reproduces
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = distill(teacher, student, method, cfg, info=info, out_dir=tmp, progress=False,
                             student_arch="lenet5-half")
            rows = [json.loads(l) for l in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
            rows = [r for r in rows if r["kind"] != "run"]  # where it ran, not what it computed
    finally:
        torch.set_num_threads(threads)
    for r in rows:
        r.pop("wall_seconds", None)
    state = result.method.state_dict()
    modules = {name: _digest(_flat_tensors(s)) for name, s in state["modules"].items()}
    optimizers = {name: _digest(_flat_tensors(s["state"])) for name, s in state["optimizers"].items()}
    weights = {name: float(sum(t.double().sum() for t in _flat_tensors(s) if t.is_floating_point()))
               for name, s in state["modules"].items()}
    return {"modules": modules, "optimizers": optimizers, "weight_sums": weights, "metrics": rows}


def cpu_kind() -> str:
    """The instruction-set level PyTorch's CPU kernels use (``AVX2``, ``AVX512``, ...), plus ``-bf16`` where the
    CPU computes bf16 natively: what decides how the kernels round."""
    return torch.backends.cpu.get_cpu_capability() + ("-bf16" if cpu_has_native_bf16() else "")


def all_references() -> dict:
    return {"torch": torch.__version__, "cases": {name: run_case(m, t, d, e) for name, m, t, d, e in CASES}}


if __name__ == "__main__":
    torch.set_num_threads(1)
    stored = json.loads(STORE.read_text()) if STORE.exists() else {"by_cpu": {}}
    stored["by_cpu"][cpu_kind()] = all_references()
    STORE.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    print(f"wrote the references of {cpu_kind()} to {STORE} (CPU kinds stored: {', '.join(sorted(stored['by_cpu']))})",
          file=sys.stderr)
