"""Reliability: resume after SIGKILL gives the uninterrupted run's exact weights and log, clean stops on
SIGINT/SIGTERM, rollback of non-finite values, mode-collapse reports, and the bad-input table of the
reliability issue (one clear line, non-zero exit, nothing existing changed)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import assert_clear_error, run_cli, tiny_method_config, tiny_teacher
from dfkd import DfkdError, create_model
from dfkd.data import dataset_info
from dfkd.engine import distill
from dfkd.engine.run_state import STATE_FILE, load_run_state
from dfkd.methods import METHODS, list_methods
from dfkd.methods.dfad import DFAD

INFO = dataset_info("digits")
# Boundaries deliberately out of step (log 2, eval 3, checkpoint 4) so a checkpoint can fall inside an open
# log window and between evaluations. The progress signal at each evaluation on 64 samples, not the default 512
# (which was a third of a run's time here).
RUN = ["--student", "lenet5-half", "--method", "pre-dfkd", "--eval-dataset", "digits", "--iterations", "60",
       "--eval-every", "3", "--set", "log_every=2", "--set", "checkpoint_every=4", "--set", "batch_size=32",
       "--set", "student_steps=2", "--set", "generator_width=8", "--set", "latent_dim=16", "--set", "vae_width=4",
       "--set", "vae_latent_dim=8", "--set", "lr_generator=0.001", "--set", "signal_samples=64", "--quiet"]


def rows(run_dir):
    """metrics.jsonl without the wall-clock fields (the only thing allowed to differ after a resume)."""
    return [{k: v for k, v in json.loads(line).items() if k != "wall_seconds"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(run_dir):
    return torch.load(run_dir / "student.pt", weights_only=True)["state_dict"]


def assert_same_run(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "resumed student differs from the uninterrupted one"
    assert rows(a) == rows(b)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for k in ("mu", "sigma2", "final", "evaluations", "iterations"):
        assert sa[k] == sb[k], k


def start(teacher, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "dfkd", "distill", "--teacher", str(teacher), *RUN,
                             "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(out, n, proc, timeout=300):
    """Wait until the run has logged n rows (and written a checkpoint), i.e. is well into its iterations."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        log = out / "metrics.jsonl"
        if (out / STATE_FILE).exists() and log.exists() and len(log.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run made no progress")


@pytest.fixture(scope="module")
def reference(digits_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability") / "uninterrupted"
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), *RUN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert len([r for r in rows(out) if r["kind"] == "eval"]) == 20
    return out


@pytest.mark.slow  # a 60-iteration reference run and a killed CLI run
def test_sigkill_then_resume_is_identical_to_an_uninterrupted_run(digits_teacher, reference, tmp_path):
    out = tmp_path / "killed"
    proc = start(digits_teacher / "teacher.pt", out)
    wait_for_rows(out, 12, proc)
    time.sleep(0.05 * (os.getpid() % 7))  # some arbitrary moment inside an iteration or a write
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL  # it really was killed mid-run ...
    assert not (out / "summary.json").exists()
    done = load_run_state(out / STATE_FILE)["loop"]["done"]
    assert 0 < done < 60
    r = run_cli("resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_run(reference, out)  # ... and finished exactly as if it had not been


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_iteration_checkpoints_and_exits_nonzero(digits_teacher, reference, tmp_path, sig):
    out = tmp_path / "stopped"
    proc = start(digits_teacher / "teacher.pt", out)
    wait_for_rows(out, 8, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"dfkd resume {out}" in err and "dfkd: error: stopped by" in err
    state = load_run_state(out / STATE_FILE)
    assert 0 < state["loop"]["done"] < 60
    assert state["loop"]["rows"] == len(rows(out))  # the checkpoint is at the very end of the log
    r = run_cli("resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_run(reference, out)


class Crash(Exception):
    pass


@pytest.mark.parametrize("name", [m for m in list_methods()])
def test_every_method_resumes_exactly_after_a_crash(name, monkeypatch, tmp_path):
    """In process: a crash at iteration 7 (after the checkpoint at 6, with rows logged after it)."""
    cfg = {"iterations": 10, "batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8,
           "eval_every": 2, "log_every": 1, "checkpoint_every": 3, "bf16": False, "channels_last": False,
           "vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2, "memory_batches": 2, "memory_batch_size": 4,
           "push_every": 1}
    cfg = tiny_method_config(name, cfg)
    data = (torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (40,)))

    def nets():
        torch.manual_seed(1)
        kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
        return tiny_teacher(name), create_model("lenet5-half", **kw)

    teacher, student = nets()
    ref = distill(teacher, student, name, cfg, info=INFO, eval_data=data, out_dir=tmp_path / "ref", progress=False)
    original = METHODS.get(name).iteration

    def crashing(self, it):
        if it == 7:
            raise Crash
        return original(self, it)

    teacher, student = nets()
    monkeypatch.setattr(METHODS.get(name), "iteration", crashing)
    with pytest.raises(Crash):
        distill(teacher, student, name, cfg, info=INFO, eval_data=data, out_dir=tmp_path / "run", progress=False)
    monkeypatch.setattr(METHODS.get(name), "iteration", original)
    assert load_run_state(tmp_path / "run" / STATE_FILE)["loop"]["done"] == 6
    teacher, student = nets()
    res = distill(teacher, student, name, cfg, info=INFO, eval_data=data, out_dir=tmp_path / "run",
                  progress=False, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(ref.student.state_dict().values(), res.student.state_dict().values()))
    for part, module in ref.method.modules().items():  # generator, VAE, memory bank too
        other = res.method.modules()[part].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), part
    assert rows(tmp_path / "ref") == rows(tmp_path / "run")


def test_resume_of_a_run_written_before_a_config_key_existed(monkeypatch, tmp_path):
    """A run checkpointed by a dfkd without some config key ran with that key's default: it resumes when the key
    is still at its default, and is refused (naming the key) when it is not."""
    import yaml

    cfg = {"iterations": 6, "batch_size": 16, "student_steps": 1, "generator_width": 4, "latent_dim": 8,
           "log_every": 1, "eval_every": 2, "checkpoint_every": 3, "bf16": False, "channels_last": False}
    original = DFAD.iteration

    def crashing(self, it):
        if it == 4:
            raise Crash
        return original(self, it)

    monkeypatch.setattr(DFAD, "iteration", crashing)
    with pytest.raises(Crash):
        distill(lenet(), lenet(), "dfad", cfg, info=INFO, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(DFAD, "iteration", original)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    del state["resolved"]["config"]["augment_mixup"]  # as if written before the key existed
    torch.save(state, tmp_path / STATE_FILE)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["config"]["augment_mixup"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(DfkdError, match="augment_mixup: 0.0 in the run, 0.5 now"):
        distill(lenet(), lenet(), "dfad", {**cfg, "augment_mixup": 0.5}, info=INFO, out_dir=tmp_path, progress=False,
                resume=True)
    res = distill(lenet(), lenet(), "dfad", cfg, info=INFO, out_dir=tmp_path, progress=False, resume=True)
    assert res.summary["iterations"] == 6


def lenet():
    return create_model("lenet5-half", num_classes=10, in_channels=1, input_size=32)


class PoisonedDFAD(DFAD):
    """DFAD whose generator weights turn NaN after the calls of ``iteration`` listed in ``poison`` (0-based)."""

    name = "poisoned-dfad"
    poison: set[int] = set()
    calls = 0

    def iteration(self, it):
        out = super().iteration(it)
        if type(self).calls in self.poison:
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
        type(self).calls += 1
        return out


@pytest.fixture
def poisoned(monkeypatch):
    monkeypatch.setitem(METHODS._factories, PoisonedDFAD.name, PoisonedDFAD)
    PoisonedDFAD.calls = 0
    return PoisonedDFAD


NAN_CFG = {"iterations": 12, "batch_size": 16, "student_steps": 1, "generator_width": 4, "latent_dim": 8,
           "log_every": 4, "eval_every": 4, "checkpoint_every": 4, "bf16": False, "channels_last": False}


def test_non_finite_weights_roll_back_and_halve_the_learning_rate(poisoned, tmp_path):
    poisoned.poison = {5}  # iteration 5, once
    teacher, student = lenet(), lenet()
    res = distill(teacher, student, poisoned.name, NAN_CFG, info=INFO, out_dir=tmp_path, progress=False)
    assert res.summary["rollbacks"] == 1
    # NaN generator weights make NaN samples, so the student's loss fails too: both rates are halved.
    assert res.method.lr_scale == {"student": 0.5, "generator": 0.5}
    assert res.method.opt_generator.param_groups[0]["lr"] == pytest.approx(0.5 * res.method.cfg.lr_generator)
    events = [r for r in rows(tmp_path) if r["kind"] == "rollback"]
    assert events == [{"kind": "rollback", "iteration": 8, "back_to": 4, "non_finite": events[0]["non_finite"],
                       "lr_scale": {"student": 0.5, "generator": 0.5}}]
    assert {"generator weights", "s_loss"} <= set(events[0]["non_finite"])
    assert [r["iteration"] for r in rows(tmp_path) if r["kind"] == "train"] == [4, 8, 12]  # no duplicate rows
    state = load_run_state(tmp_path / STATE_FILE)
    for part in state["method_state"]["modules"].values():
        assert all(torch.isfinite(t).all() for t in part.values() if t.is_floating_point())


def test_repeated_non_finite_values_stop_with_a_clear_error(poisoned, tmp_path):
    poisoned.poison = set(range(4, 100))  # from iteration 4 on, every retry fails again
    teacher, student = lenet(), lenet()
    with pytest.raises(DfkdError, match="after 3 rollbacks"):
        distill(teacher, student, poisoned.name, NAN_CFG, info=INFO, out_dir=tmp_path, progress=False)
    state = load_run_state(tmp_path / STATE_FILE)  # the last good checkpoint is still there, and finite
    assert state["loop"]["done"] == 4
    for part in state["method_state"]["modules"].values():
        assert all(torch.isfinite(t).all() for t in part.values() if t.is_floating_point())


def test_mode_collapse_is_detected_and_reported(tmp_path):
    teacher, student = lenet(), lenet()
    with torch.no_grad():  # a teacher that calls everything class 3: every synthetic batch is "collapsed"
        last = [m for m in teacher.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[3] = 10.0
    cfg = {**NAN_CFG, "iterations": 16, "log_every": 2, "collapse_patience": 6}
    s = distill(teacher, student, "dfad", cfg, info=INFO, out_dir=tmp_path, progress=False).summary
    assert s["mode_collapse"] and s["top_class_frac_max"] == 1.0
    assert s["collapse_first_iteration"] == 0 and s["collapse_iterations"] == 16
    events = [r for r in rows(tmp_path) if r["kind"] == "collapse"]
    assert [(e["iteration"], e["since"]) for e in events] == [(6, 0)]  # reported once, when patience ran out


def test_healthy_generator_reports_no_collapse(digits_teacher):
    from dfkd import load_model
    teacher, info, _ = load_model(digits_teacher / "teacher.pt")
    s = distill(teacher, "lenet5-half", "dafl", {**NAN_CFG, "iterations": 20, "batch_size": 64}, info=info,
                progress=False).summary
    assert not s["mode_collapse"] and s["top_class_frac_max"] < 0.8


# -- bad input -----------------------------------------------------------------------------------------------

@pytest.fixture
def finished_run(digits_teacher, tmp_path):
    out = tmp_path / "run"
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), *RUN[:8], "--iterations", "6",
                "--set", "checkpoint_every=2", "--set", "batch_size=16", "--set", "student_steps=1", "--quiet",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def snapshot_files(d):
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_resume_refuses_a_corrupt_metrics_line(finished_run):
    (finished_run / "summary.json").unlink()  # as if it had crashed at the end
    log = finished_run / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = '{"iteration": 2, "kind": "ev\n'
    log.write_text("".join(lines))
    before = snapshot_files(finished_run)
    assert_clear_error(run_cli("resume", str(finished_run)), "metrics.jsonl' line 3 is corrupt", "--overwrite")
    assert snapshot_files(finished_run) == before


def test_resume_refuses_a_truncated_checkpoint(finished_run):
    state = finished_run / STATE_FILE
    state.write_bytes(state.read_bytes()[:5000])
    before = snapshot_files(finished_run)
    assert_clear_error(run_cli("resume", str(finished_run)), "truncated or corrupt", "--overwrite")
    assert snapshot_files(finished_run) == before


def test_resume_refuses_other_settings_and_existing_runs_need_a_flag(digits_teacher, finished_run):
    before = snapshot_files(finished_run)
    base = ["distill", "--teacher", str(digits_teacher / "teacher.pt"), *RUN[:8], "--iterations", "6",
            "--set", "checkpoint_every=2", "--set", "batch_size=16", "--set", "student_steps=1", "--quiet",
            "--out", str(finished_run)]
    assert_clear_error(run_cli(*base, "--set", "lr_student=0.5", "--resume"), "other settings",
                       "config.lr_student: 0.1 in the run, 0.5 now")
    assert_clear_error(run_cli(*base), "already holds a run", "--resume", "--overwrite")
    assert snapshot_files(finished_run) == before
    r = run_cli(*base, "--resume")  # same settings: the finished run is simply completed again, unchanged
    assert r.returncode == 0, r.stderr
    assert weights(finished_run).keys() and rows(finished_run) == [
        {k: v for k, v in json.loads(line).items() if k != "wall_seconds"}
        for line in before["metrics.jsonl"].decode().splitlines()]


def test_resume_of_a_directory_without_a_run(tmp_path):
    assert_clear_error(run_cli("resume", str(tmp_path)), "holds no run", "dfkd distill")


def test_unwritable_output_directory(digits_teacher):
    # /proc refuses new entries even to root, unlike a chmod-ed directory.
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
                "--out", "/proc/dfkd-run", "--iterations", "1")
    assert_clear_error(r, "output directory '/proc/dfkd-run' is not writable")


def test_teacher_and_eval_data_shape_mismatch(digits_teacher, tmp_path):
    from test_data import write_tree
    write_tree(tmp_path / "tree", classes=[str(i) for i in range(10)], size=(32, 32), mode="RGB")
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
                "--eval-dataset", f"imagefolder:{tmp_path / 'tree'}", "--out", str(tmp_path / "run"))
    assert_clear_error(r, "takes inputs (1, 32, 32)", "(3, 32, 32)")
    assert not (tmp_path / "run").exists()


def test_truncated_teacher_checkpoint(digits_teacher, tmp_path):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes((digits_teacher / "teacher.pt").read_bytes()[:3000])
    r = run_cli("distill", "--teacher", str(bad), "--student", "lenet5-half", "--out", str(tmp_path / "run"))
    assert_clear_error(r, str(bad))
    assert not (tmp_path / "run").exists()
