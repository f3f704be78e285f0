"""Every method that existed before the parts redesign still computes what it computed then.

The stored values (``tests/data/method_references.json``, written by ``tests/method_references.py`` from the
code before the redesign, and rewritten on 2026-11-26 for the deliberate default changes of issue 17: the
official PRE-DFKD generator, sigmoid outputs for DFAD and PRE-DFKD+, and PRE-DFKD+'s adversarial weight 5; DAFL
and noise unchanged) fingerprint each case's final modules, optimizer states and logged scalars, one set per
CPU kind (instruction-set level, native bf16 or not: what decides how kernels round). On a CPU kind with a
stored set the check is exact (bit for bit). On another kind the fp32 cases are checked within a tolerance
(measured between an AVX-512 and an AVX2 CPU on 2026-11-26: logged scalars within 6e-5, weight sums within
6e-4, relative); the bf16 cases, whose roundings differ by design between native and emulated bf16 (up to
tens of percent on a discrete metric after three iterations), are held to what is CPU-independent: the same
logged keys and modules, finite values.
"""
import json
import math

import pytest

from method_references import CASES, STORE, cpu_kind, run_case

STORED = json.loads(STORE.read_text())["by_cpu"]
KIND = cpu_kind()


def _close(a, b, rel):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=rel)
    return a == b


def _finite(a) -> bool:
    if isinstance(a, dict):
        return all(_finite(v) for v in a.values())
    if isinstance(a, list):
        return all(_finite(v) for v in a)
    return not isinstance(a, float) or math.isfinite(a)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_method_reproduces_its_stored_reference(case):  # run_case pins one thread
    _, method, teacher, dataset, extra = next(c for c in CASES if c[0] == case)
    got = run_case(method, teacher, dataset, extra)
    if KIND in STORED:
        ref = STORED[KIND]["cases"][case]
        assert got["metrics"] == ref["metrics"]
        assert got["modules"] == ref["modules"]
        assert got["optimizers"] == ref["optimizers"]
        return
    ref = next(iter(STORED.values()))["cases"][case]  # another CPU kind: the same computation, rounded differently
    if extra.get("bf16", True):
        assert [sorted(r) for r in got["metrics"]] == [sorted(r) for r in ref["metrics"]], "logged keys moved"
        assert got["modules"].keys() == ref["modules"].keys() and got["optimizers"].keys() == ref["optimizers"].keys()
        assert _finite(got["metrics"]) and _finite(got["weight_sums"])
    else:
        assert _close(got["metrics"], ref["metrics"], 1e-3), "logged scalars moved"
        assert _close(got["weight_sums"], ref["weight_sums"], 5e-3), "final weights moved"
