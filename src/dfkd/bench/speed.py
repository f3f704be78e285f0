"""``dfkd bench --speed``: seconds per distillation iteration of dfkd's loop against a bare PyTorch loop.

Three variants, each in its own process (so that each has its own peak RSS), on the suite's networks,
batch sizes and steps per iteration, with randomly initialised networks (speed does not depend on what
the weights are, and no data set or teacher training is needed):

  dfkd        ``dfkd.distill`` as a user runs it (its loop, logging, finiteness checks, rollback snapshots,
              checkpoints every ``checkpoint_every`` iterations), with the suite's settings;
  bare_fp32   a plain, minimal loop written below with nothing from dfkd's machinery (only the same network
              classes), doing exactly the same forward/backward passes and optimizer steps in fp32, default
              memory format and default optimizers: the reference;
  bare_same   the same bare loop with the precision and memory-format settings that dfkd uses;
  bare_same_compiled  (only with ``--compile``) bare_same with every network's forward passes through
              ``torch.compile`` (inductor), to measure whether compiling would pay on this machine; the
              compilation itself happens in the warm-up iterations and is reported separately.

speedup_vs_fp32_bare = bare_fp32 / dfkd and overhead_vs_same_settings_bare = dfkd / bare_same (seconds per
iteration, after warm-up iterations); with ``--compile`` also compile_speedup_vs_same_settings_bare =
bare_same / bare_same_compiled. The bare loops exist for the methods whose iteration they transcribe
(``bare_loops.BARE_LOOPS``).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..device import choose_precision, device_name, resolve_device, synchronize
from ..errors import DfkdError
from .bare_loops import BARE_LOOPS
from .suites import Suite, get_suite

VARIANTS = ("bare_fp32", "bare_same", "dfkd")
COMPILED = "bare_same_compiled"


def _networks(suite: Suite, seed: int = 0):
    from ..data import dataset_info
    from ..models import create_model

    info = dataset_info(suite.dataset)
    kw = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
    torch.manual_seed(seed)
    return info, create_model(suite.teacher_arch, **kw), create_model(suite.student_arch, **kw)


def _config(suite: Suite, method: str, overrides: dict[str, Any]):
    from ..engine.loop import resolve_config
    from ..methods import get_method

    return resolve_config(get_method(method), {**suite.method_overrides(method), **overrides})


# -- one variant in this process ----------------------------------------------------------------------------

def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure_variant(variant: str, suite_name: str, method: str, iterations: int, warmup: int,
                    overrides: dict[str, Any], device: str = "auto") -> dict[str, Any]:
    """Seconds per iteration (mean over ``iterations`` after ``warmup``), peak RSS and (on a GPU) peak GPU memory
    of one variant on ``device``."""
    dev = resolve_device(device)
    suite = get_suite(suite_name)
    cfg = _config(suite, method, {**overrides, "iterations": warmup + iterations})
    info, teacher, student = _networks(suite, cfg.seed)
    replay_bytes, compile_seconds = None, None
    if variant == "dfkd":
        from ..engine import distill
        from ..metrics_log import read_metrics

        # The loop logs every log_every iterations; time from the row after the warm-up to the last row.
        with tempfile.TemporaryDirectory() as tmp:
            res = distill(teacher, student, method, cfg, info=info, out_dir=Path(tmp) / "run", progress=False,
                          device=dev)
            rows = [r for r in read_metrics(Path(tmp) / "run" / "metrics.jsonl") if r.get("kind") == "train"]
        first = next(r for r in rows if r["iteration"] >= warmup)
        last = rows[-1]
        seconds = (last["wall_seconds"] - first["wall_seconds"]) / (last["iteration"] - first["iteration"])
        replay_bytes = res.summary["replay_memory_bytes"]
    else:
        torch.manual_seed(cfg.seed)
        step = BARE_LOOPS[method](info, teacher, student, cfg, fast=variant != "bare_fp32",
                                  compiled=variant == COMPILED, device=dev)
        t0 = time.perf_counter()
        step(0)  # the first iteration compiles (COMPILED) or warms the allocator
        synchronize(dev)
        compile_seconds = time.perf_counter() - t0 if variant == COMPILED else None
        for it in range(1, warmup):
            step(it)
        synchronize(dev)
        t0 = time.perf_counter()
        for it in range(warmup, warmup + iterations):
            step(it)
        synchronize(dev)  # a GPU runs ahead of the host: time the work, not its queueing
        seconds = (time.perf_counter() - t0) / iterations
    gpu_peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    return {"variant": variant, "seconds_per_iteration": seconds, "peak_rss_bytes": _peak_rss_bytes(),
            "peak_gpu_bytes": gpu_peak, "device": device_name(dev),
            "replay_memory_bytes": replay_bytes, "first_iteration_seconds": compile_seconds}


def run_speed_benchmark(suite_name: str, method: str = "pre-dfkd", iterations: int = 30, warmup: int = 10,
                        overrides: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                        compile: bool = False, device: str = "auto") -> dict[str, Any]:
    """Measure the variants one after the other (never concurrently) on ``device`` and return the figures."""
    dev = resolve_device(device)  # an unavailable device fails here, with one line
    suite = get_suite(suite_name)
    if method not in BARE_LOOPS:
        raise DfkdError(f"no bare reference loop for method '{method}'; --speed supports: {', '.join(BARE_LOOPS)}")
    overrides = dict(overrides or {})
    cfg = _config(suite, method, {**overrides, "iterations": warmup + iterations})  # validates the overrides
    if warmup % cfg.log_every or iterations % cfg.log_every:
        raise DfkdError(f"--iterations and the warm-up must be multiples of log_every ({cfg.log_every})")
    results = {}
    for variant in VARIANTS + ((COMPILED,) if compile else ()):
        log(f"speed: {variant} ({warmup} warm-up + {iterations} timed iterations) ...")
        payload = json.dumps({"variant": variant, "suite": suite_name, "method": method, "iterations": iterations,
                              "warmup": warmup, "overrides": overrides, "device": device})
        proc = subprocess.run([sys.executable, "-m", "dfkd.bench.speed", payload], capture_output=True, text=True,
                              env={**os.environ})
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DfkdError(f"speed variant '{variant}' failed: {tail}")
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    s = {v: r["seconds_per_iteration"] for v, r in results.items()}
    compiled = {} if not compile else {
        "seconds_per_iteration_bare_same_compiled": s[COMPILED],
        "compile_speedup_vs_same_settings_bare": s["bare_same"] / s[COMPILED],
        "first_iteration_seconds_bare_same_compiled": results[COMPILED]["first_iteration_seconds"],
        "peak_rss_bytes_bare_same_compiled": results[COMPILED]["peak_rss_bytes"],
    }
    return {
        "suite": suite_name, "method": method, "teacher_arch": suite.teacher_arch, "student_arch": suite.student_arch,
        "batch_size": cfg.batch_size, "student_steps": cfg.student_steps, "bf16": cfg.bf16,
        "bf16_student": cfg.student_bf16, "channels_last": cfg.channels_last,
        "precision": choose_precision(dev, cfg.bf16, cfg.amp_dtype),
        "student_precision": choose_precision(dev, cfg.student_bf16, cfg.amp_dtype),
        "timed_iterations": iterations, "warmup_iterations": warmup,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "device": results["dfkd"]["device"],
        "peak_gpu_bytes_dfkd": results["dfkd"]["peak_gpu_bytes"],
        "peak_gpu_bytes_bare_same_settings": results["bare_same"]["peak_gpu_bytes"],
        "seconds_per_iteration_dfkd": s["dfkd"],
        "seconds_per_iteration_bare_fp32": s["bare_fp32"],
        "seconds_per_iteration_bare_same_settings": s["bare_same"],
        "speedup_vs_fp32_bare": s["bare_fp32"] / s["dfkd"],
        "overhead_vs_same_settings_bare": s["dfkd"] / s["bare_same"],
        "peak_rss_bytes_dfkd": results["dfkd"]["peak_rss_bytes"],
        "peak_rss_bytes_bare_fp32": results["bare_fp32"]["peak_rss_bytes"],
        "peak_rss_bytes_bare_same_settings": results["bare_same"]["peak_rss_bytes"],
        "replay_memory_bytes": results["dfkd"]["replay_memory_bytes"],
        **compiled,
    }


def format_speed(r: dict[str, Any]) -> str:
    mib = 1024 ** 2
    return "\n".join([
        f"speed: {r['suite']} / {r['method']} ({r['teacher_arch']} -> {r['student_arch']}, batch {r['batch_size']}, "
        f"{r['student_steps']} student steps, on {r['device']}, {r['threads']} threads, torch {r['torch']})",
        f"  dfkd ({r['precision']}, student step {r['student_precision']}, channels_last={r['channels_last']}): "
        f"{r['seconds_per_iteration_dfkd']:.4f} s/it   peak RSS {r['peak_rss_bytes_dfkd'] / mib:.0f} MiB",
        f"  bare loop, fp32:          {r['seconds_per_iteration_bare_fp32']:.4f} s/it   "
        f"peak RSS {r['peak_rss_bytes_bare_fp32'] / mib:.0f} MiB",
        f"  bare loop, same settings: {r['seconds_per_iteration_bare_same_settings']:.4f} s/it   "
        f"peak RSS {r['peak_rss_bytes_bare_same_settings'] / mib:.0f} MiB",
        f"  speedup_vs_fp32_bare {r['speedup_vs_fp32_bare']:.2f}x   "
        f"overhead_vs_same_settings_bare {r['overhead_vs_same_settings_bare']:.3f}   "
        f"replay_memory_bytes {r['replay_memory_bytes']}",
    ] + ([] if r.get("peak_gpu_bytes_dfkd") is None else [
        f"  peak GPU memory: dfkd {r['peak_gpu_bytes_dfkd'] / mib:.0f} MiB, bare loop same settings "
        f"{r['peak_gpu_bytes_bare_same_settings'] / mib:.0f} MiB",
    ]) + ([] if "seconds_per_iteration_bare_same_compiled" not in r else [
        f"  bare loop, same settings + torch.compile: {r['seconds_per_iteration_bare_same_compiled']:.4f} s/it "
        f"(first iteration {r['first_iteration_seconds_bare_same_compiled']:.1f} s)   "
        f"compile_speedup_vs_same_settings_bare {r['compile_speedup_vs_same_settings_bare']:.2f}x   "
        f"peak RSS {r['peak_rss_bytes_bare_same_compiled'] / mib:.0f} MiB",
    ]))


def _main() -> int:
    spec = json.loads(sys.argv[1])
    result = measure_variant(spec["variant"], spec["suite"], spec["method"], spec["iterations"], spec["warmup"],
                             spec["overrides"], spec.get("device", "auto"))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
