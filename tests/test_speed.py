"""The fast path (bf16 autocast + channels_last) computes what the fp32 path computes, and the speed
benchmark runs end to end with a tiny budget (its figures are produced by ``dfkd bench --speed``, never
asserted on time here)."""
import copy
import json

import pytest
import torch

from conftest import needs_bn_teacher, run_cli, tiny_method_config
from dfkd import create_model
from dfkd.data import dataset_info
from dfkd.device import cpu_has_native_bf16
from dfkd.engine.loop import resolve_config
from dfkd.methods import get_method, list_methods

# bf16 keeps 8 significant bits: each rounding is off by at most 2^-9 (0.2 %) relative, and autocast keeps
# reductions and the losses in fp32, so after one iteration (10 layers, one optimizer step per network) the
# loss terms differ by well under 1 % (measured: at most 0.26 %, on the student loss of DAFL). 2 % leaves
# headroom for other CPUs, while a fast path that skips a pass, feeds the wrong memory layout or precision
# into a loss, or re-normalises differently moves a loss term by tens of percent.
RTOL = 0.02


@pytest.mark.parametrize("name", [m for m in list_methods()])
def test_one_iteration_fast_and_fp32_give_the_same_losses(name):
    info = dataset_info("fashion-mnist")
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    torch.manual_seed(0)
    teacher = create_model("cnn-bn" if needs_bn_teacher(name) else "lenet5", **kw)
    student = create_model("lenet5-half", **kw)
    out = {}
    for fast in (False, True):
        cfg = resolve_config(get_method(name), tiny_method_config(name, {
            "batch_size": 64, "student_steps": 3, "generator_width": 16, "bf16": fast, "channels_last": fast,
            "amp_dtype": "bfloat16", "lr_generator": 1e-3}))  # bf16 on every CPU, emulated where not native
        torch.manual_seed(1)
        m = get_method(name)(copy.deepcopy(teacher), copy.deepcopy(student), info, cfg)
        torch.manual_seed(2)
        out[fast] = {k: v.item() for k, v in m.iteration(0).items()}
    assert out[True].keys() == out[False].keys() and "s_loss" in out[True]
    for k, ref in out[False].items():
        assert out[True][k] == pytest.approx(ref, rel=RTOL, abs=1e-4), k


def test_bf16_student_false_keeps_the_student_step_in_fp32():
    """With bf16 on but bf16_student off, a student step on a given batch is the fp32 step, bit for bit
    (same weights after it); with bf16_student on it is not."""
    info = dataset_info("fashion-mnist")
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    torch.manual_seed(0)
    teacher, student = create_model("lenet5", **kw), create_model("lenet5-half", **kw)
    x = torch.randn(64, 1, 32, 32).bfloat16()  # what a bf16 generator hands the student step
    out = {}
    for bf16, bf16_student in ((False, True), (True, False), (True, True)):
        cfg = resolve_config(get_method("dfad"), {"bf16": bf16, "bf16_student": bf16_student, "channels_last": False,
                                                  "amp_dtype": "bfloat16"})
        m = get_method("dfad")(copy.deepcopy(teacher), copy.deepcopy(student), info, cfg)
        loss = m.student_step(x if bf16 else x.float())
        out[bf16, bf16_student] = (loss.item(), torch.cat([p.detach().flatten() for p in m.student.parameters()]))
    (fp32_loss, fp32_w), (mixed_loss, mixed_w), (bf16_loss, bf16_w) = out.values()
    assert mixed_loss == fp32_loss and torch.equal(mixed_w, fp32_w)
    assert bf16_loss != fp32_loss and bf16_loss == pytest.approx(fp32_loss, rel=RTOL)


@pytest.mark.slow  # three subprocesses
def test_speed_benchmark_runs_with_a_tiny_budget():
    tiny = ["--set", "batch_size=16", "--set", "student_steps=2", "--set", "generator_width=8", "--set",
            "vae_width=4", "--set", "log_every=2"]
    r = run_cli("bench", "--speed", "--suite", "digits", "--method", "pre-dfkd", "--iterations", "4", "--warmup", "2",
                "--json", *tiny)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    keys = ("seconds_per_iteration_dfkd", "seconds_per_iteration_bare_fp32", "seconds_per_iteration_bare_same_settings",
            "peak_rss_bytes_dfkd", "peak_rss_bytes_bare_fp32", "peak_rss_bytes_bare_same_settings")
    assert all(out[k] > 0 for k in keys)
    assert out["speedup_vs_fp32_bare"] == pytest.approx(out["seconds_per_iteration_bare_fp32"]
                                                        / out["seconds_per_iteration_dfkd"])
    assert out["overhead_vs_same_settings_bare"] == pytest.approx(out["seconds_per_iteration_dfkd"]
                                                                  / out["seconds_per_iteration_bare_same_settings"])
    assert out["replay_memory_bytes"] > 0 and out["batch_size"] == 16 and out["timed_iterations"] == 4
    assert out["bf16"] and out["bf16_student"]
    native = "bf16" if cpu_has_native_bf16() else "fp32"  # dfkd's choice for this CPU (dfkd.device)
    assert out["precision"] == out["student_precision"] == native
    r = run_cli("bench", "--speed", "--suite", "digits", "--method", "mb-dfkd")
    assert r.returncode == 2 and "no bare reference loop for method 'mb-dfkd'" in r.stderr
