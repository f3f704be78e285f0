"""Device handling, checked without a GPU.

The bug class a GPU run meets first is a tensor made without ``device=``: it lands on the default device (the
CPU) while the run computes on ``cuda``, and the next op that mixes the two fails. ``foreign_default_device``
reproduces exactly that on any machine: inside it, every factory call without a device makes a ``meta`` tensor,
and mixing one with the run's CPU tensors raises. Every method's iterations, evaluation, progress signal,
checkpoint and resume run under it; ``test_the_guard_catches_a_tensor_made_without_a_device`` reintroduces such
a bug and shows the guard fails on it.
"""
import contextlib
import json

import pytest
import torch

from conftest import assert_clear_error, run_cli, tiny_method_config, tiny_teacher
from dfkd import DfkdError, create_model
from dfkd.data import dataset_info
from dfkd.device import choose_precision, resolve_device, to_cpu
from dfkd.engine import distill
from dfkd.engine.run_state import STATE_FILE
from dfkd.methods import METHODS, list_methods
from dfkd.models.generator import Generator
from dfkd.precision import Precision

INFO = dataset_info("digits")
CFG = {"iterations": 4, "batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8,
       "eval_every": 2, "log_every": 1, "checkpoint_every": 2, "bf16": False, "channels_last": False,
       "vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2, "memory_batches": 2, "memory_batch_size": 4,
       "push_every": 1, "signal_samples": 8}


@contextlib.contextmanager
def foreign_default_device():
    """Tensors made without ``device=`` go to ``meta``, not to the run's device (module docstring)."""
    with torch.device("meta"):
        yield


def nets(name, seed=1):
    torch.manual_seed(seed)
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    return tiny_teacher(name), create_model("lenet5-half", **kw)


def eval_data():
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (40,), generator=g))


class Crash(Exception):
    pass


# every method with its defaults, plus the replay options off by default (a fitted prior, class-balanced replay)
@pytest.mark.parametrize("name,extra", [(m, {}) for m in list_methods()]
                         + [("pre-dfkd", {"replay_prior": "fitted", "replay_balance": 2}),
                            ("mb-dfkd", {"replay_balance": 2})])
def test_every_method_runs_and_resumes_when_the_default_device_is_not_the_run_device(name, extra, monkeypatch,
                                                                                     tmp_path):
    cfg = tiny_method_config(name, {**CFG, **extra})
    teacher, student = nets(name)
    data = eval_data()  # the user's data: made before, on the host
    with foreign_default_device():
        ref = distill(teacher, student, name, cfg, info=INFO, eval_data=data, out_dir=tmp_path / "ref",
                      progress=False, device="cpu")
    assert ref.summary["device"] == "cpu" and ref.summary["precision"] == "fp32"
    assert all(p.device.type == "cpu" for p in ref.student.parameters())
    original = METHODS.get(name).iteration

    def crashing(self, it):
        if it == 3:
            raise Crash
        return original(self, it)

    teacher, student = nets(name)
    monkeypatch.setattr(METHODS.get(name), "iteration", crashing)
    with pytest.raises(Crash):
        distill(teacher, student, name, cfg, info=INFO, eval_data=eval_data(), out_dir=tmp_path / "run",
                progress=False, device="cpu")
    monkeypatch.setattr(METHODS.get(name), "iteration", original)
    teacher, student = nets(name)
    with foreign_default_device():  # restoring parts, loop sums and RNG from a checkpoint places them right too
        res = distill(teacher, student, name, cfg, info=INFO, eval_data=data, out_dir=tmp_path / "run",
                      progress=False, device="cpu", resume=True)
    for a, b in zip(ref.student.state_dict().values(), res.student.state_dict().values()):
        assert torch.equal(a, b)


def test_the_guard_catches_a_tensor_made_without_a_device(monkeypatch, tmp_path):
    """Reintroduce the bug the guard exists for (latents drawn without a device, as the code once did) and show that
    the same run now fails under the guard, while it still passes without it (the CPU alone cannot see it)."""
    def buggy_latents(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)  # no device=: the CPU on a GPU run

    monkeypatch.setattr(Generator, "sample_latent", buggy_latents)
    cfg = tiny_method_config("dfad", {**CFG, "iterations": 1})
    teacher, student = nets("dfad")
    distill(teacher, student, "dfad", cfg, info=INFO, progress=False, device="cpu")  # unnoticed on the CPU
    teacher, student = nets("dfad")
    with foreign_default_device(), pytest.raises(RuntimeError, match="meta"):
        distill(teacher, student, "dfad", cfg, info=INFO, progress=False, device="cpu")


def test_checkpoints_and_logs_are_device_free_and_say_where_the_run_ran(tmp_path):
    cfg = tiny_method_config("pre-dfkd", {**CFG, "iterations": 2})
    teacher, student = nets("pre-dfkd")
    res = distill(teacher, student, "pre-dfkd", cfg, info=INFO, out_dir=tmp_path, progress=False, device="cpu")
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0] == {"kind": "run", "device": "cpu", "precision": "fp32", "student_precision": "fp32",
                       "world_size": 1}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["device"], summary["precision"]) == ("cpu", "fp32")
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)  # no map_location needed: CPU tensors only

    def devices(obj):
        if torch.is_tensor(obj):
            yield obj.device.type
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from devices(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from devices(v)

    assert set(devices(state)) == {"cpu"}
    assert next(res.method.teacher.parameters()).device.type == "cpu"


def test_fp16_with_a_gradient_scaler_trains_and_checkpoints_its_scale(tmp_path):
    """The pre-Ampere GPU path (fp16 autocast + GradScaler), exercised on the CPU with amp_dtype=float16."""
    cfg = tiny_method_config("pre-dfkd", {**CFG, "iterations": 2, "bf16": True, "amp_dtype": "float16"})
    teacher, student = nets("pre-dfkd")
    res = distill(teacher, student, "pre-dfkd", cfg, info=INFO, out_dir=tmp_path, progress=False, device="cpu")
    assert res.summary["precision"] == "fp16" and res.summary["rollbacks"] == 0
    assert all(torch.isfinite(p).all() for p in res.student.parameters())
    scalers = torch.load(tmp_path / STATE_FILE, weights_only=True)["method_state"]["grad_scalers"]
    assert scalers["amp"]["scale"] > 0 and scalers["amp_student"]["scale"] > 0


def test_precision_scaler_skips_a_step_with_non_finite_gradients():
    amp = Precision("fp16", torch.device("cpu"))
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    amp.minimize((w * float("inf")).sum(), [opt])  # inf gradients: the step is skipped, the scale backs off
    assert torch.equal(w.detach(), torch.ones(3)) and amp.scaler.get_scale() < 65536.0
    amp.minimize((w * 2).sum(), [opt])  # the inf gradients are zeroed first
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))  # unscaled gradient 2, lr 0.1


def test_precision_follows_the_device(monkeypatch):
    cpu = torch.device("cpu")
    for avx512_bf16, amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        # a CPU without native bf16 (AVX2 and the like) emulates it, several times slower than fp32
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert choose_precision(cpu, True) == expected and choose_precision(cpu, False) == "fp32"
        assert choose_precision(cpu, True, "bfloat16") == "bf16"  # asked for explicitly: emulated where need be
    assert choose_precision(torch.device("mps"), True) == "fp32"
    for capability, expected in (((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert choose_precision(torch.device("cuda", 0), True) == expected
        assert choose_precision(torch.device("cuda", 0), False) == "fp32"
    assert choose_precision(torch.device("cuda", 0), True, "bfloat16") == "bf16"  # asked for explicitly
    assert choose_precision(cpu, True, "float16") == "fp16"


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("CPU") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type in ("cpu", "mps")
    for spec, fragment in (("cuda", "no CUDA GPU"), ("cuda:1", "no CUDA GPU"), ("tpu", "unknown device"),
                           ("gpu!", "unknown device")):
        with pytest.raises(DfkdError, match=fragment):
            resolve_device(spec)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)  # torchrun: this rank's GPU
    assert resolve_device("auto", local_rank=0) == torch.device("cuda", 0)
    with pytest.raises(DfkdError, match="local rank 2 needs GPU 2, but this machine has 2"):
        resolve_device("cuda", local_rank=2)
    with pytest.raises(DfkdError, match="GPU 3 asked for"):
        resolve_device("cuda:3")


def test_to_cpu_copies_nested_state():
    state = {"a": [torch.ones(2), (torch.zeros(1), 3)], "b": {"c": torch.ones(1)}, "d": "x"}
    out = to_cpu(state)
    assert out["a"][1][1] == 3 and out["d"] == "x" and torch.equal(out["b"]["c"], torch.ones(1))


def test_cli_refuses_an_unavailable_device_before_touching_files(digits_teacher, tmp_path):
    out = tmp_path / "run"
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
                "--method", "dfad", "--iterations", "2", "--out", str(out), "--device", "cuda:7",
                env_extra={"CUDA_VISIBLE_DEVICES": ""}, isolated=True)
    assert_clear_error(r, "cuda:7", "no CUDA GPU")
    assert not out.exists()
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--device", "quantum")
    assert_clear_error(r, "unknown device 'quantum'")


@pytest.mark.slow  # a fresh process that runs every self-check, a 2-process torchrun included
def test_selftest_on_the_cpu_runs_every_check_and_reports_figures(tmp_path):
    """The GPU self-check's machinery, run against the CPU itself (parity is then exact: 0.0)."""
    out = tmp_path / "selftest.json"
    r = run_cli("selftest", "--device", "cpu", "--methods", "dfad,pre-dfkd", "--no-speed", "--json", str(out),
                env_extra={"OMP_NUM_THREADS": "1"}, isolated=True)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    checks = [(c["check"], c.get("method")) for c in result["results"]]
    assert checks == [("parity", "dfad"), ("parity", "pre-dfkd"), ("precision", "dfad"), ("precision", "pre-dfkd"),
                      ("resume", "pre-dfkd"), ("resume", "pre-dfkd"), ("torchrun", None)]
    assert result["passed"] and all(c["ok"] for c in result["results"])
    assert all(c["relative_l2"] == 0.0 for c in result["results"] if "relative_l2" in c)
    assert "selftest: 7 of 7 checks passed" in r.stdout
    assert_clear_error(run_cli("selftest", "--device", "cpu", "--methods", "nope"), "unknown method 'nope'")
