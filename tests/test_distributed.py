"""torchrun on CPU (gloo): a 2-process run completes with identical parameters on both ranks; one 2-rank
step equals a single-process step on the concatenated batch; a killed rank stops the run with an error and
the run resumes from its checkpoint; a checkpoint is only resumed with its own world size."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

from conftest import assert_clear_error, run_cli
import pytest

from dfkd import create_model
from dfkd.engine.run_state import load_run_state

pytestmark = pytest.mark.slow  # trains on real data / starts torchrun processes

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TINY = ["--set", "batch_size=32", "--set", "student_steps=2", "--set", "generator_width=8", "--set", "vae_width=4",
        "--set", "vae_latent_dim=8", "--set", "lr_generator=0.001", "--set", "signal_samples=64", "--quiet"]


def torchrun(*args, timeout=300, **kw):
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.mark.parametrize("replay_prior", ["standard", "fitted"])  # fitted: the prior's moments averaged over ranks
def test_two_process_pre_dfkd_run_completes_with_identical_ranks(digits_teacher, tmp_path, replay_prior):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from dfkd import load_model
        from dfkd.engine import distill
        teacher, info, _ = load_model({str(digits_teacher / "teacher.pt")!r})
        cfg = dict(iterations=6, batch_size=32, student_steps=2, generator_width=8, vae_width=4, vae_latent_dim=8,
                   log_every=2, eval_every=3, checkpoint_every=2, lr_generator=1e-3, replay_prior={replay_prior!r})
        res = distill(teacher, "lenet5-half", "pre-dfkd", cfg, info=info, progress=False,
                      out_dir={str(tmp_path / "run")!r})
        state = {{k: m.state_dict() for k, m in res.method.modules().items()}}
        torch.save({{"state": state, "summary": res.summary}}, {str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.pt")
    """))
    r = torchrun(str(script))
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    for part in ("student", "generator", "vae"):
        for name, p in a["state"][part].items():
            if "running_" in name or "num_batches" in name:
                continue  # BN buffers are per rank (each rank's last batch), by design
            assert torch.equal(p, b["state"][part][name]), (part, name)
    assert ("prior_mean" in a["state"]["vae"]) == (replay_prior == "fitted")
    assert a["summary"]["world_size"] == 2 and a["summary"]["ranks_consistent"]
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == [2, 4, 6]  # rank 0 alone writes


def test_two_rank_step_equals_one_process_step_on_the_whole_batch(tmp_path):
    """LeNet has no BatchNorm, so per-rank and global statistics cannot differ; DDP averages the two ranks'
    gradients of a per-rank mean loss, which is the gradient of the mean over both halves. Only the order of
    the fp32 additions differs (all-reduce vs one backward), about 1e-7 relative: atol 1e-6 on the weights
    after one SGD step (lr 0.1) is far below what a missing or doubled all-reduce would change (1e-3 and more)."""
    script = tmp_path / "step.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from dfkd import create_model
        from dfkd.data import dataset_info
        from dfkd.distributed import from_environment
        from dfkd.engine.loop import resolve_config
        from dfkd.methods import get_method
        ctx = from_environment()
        world, rank = ctx.world_size, ctx.rank
        info = dataset_info("digits")
        torch.manual_seed(0)
        kw = dict(num_classes=10, in_channels=1, input_size=32)
        teacher, student = create_model("lenet5", **kw), create_model("lenet5-half", **kw)
        cfg = resolve_config(get_method("dfad"), dict(bf16=False, channels_last=False, batch_size=16))
        m = get_method("dfad")(teacher, student, info, cfg, ctx)
        x = torch.randn(32, 1, 32, 32, generator=torch.Generator().manual_seed(1))
        per = x.shape[0] // world
        m.student_step(x[rank * per:(rank + 1) * per])
        if rank == 0:
            torch.save(m.student.state_dict(), {str(tmp_path)!r} + f"/world{{world}}.pt")
        m.close()  # drops the DDP wrapper before the process group goes
        ctx.close()
    """))
    r = torchrun(str(script))
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    two, one = (torch.load(tmp_path / f"world{w}.pt", weights_only=True) for w in (2, 1))
    for k in one:
        assert torch.allclose(two[k], one[k], rtol=0, atol=1e-6), k
    torch.manual_seed(0)  # the initial student, built exactly as in the script
    create_model("lenet5", num_classes=10, in_channels=1, input_size=32)
    before = create_model("lenet5-half", num_classes=10, in_channels=1, input_size=32).state_dict()
    assert max((one[k] - before[k]).abs().max().item() for k in one) > 1e-3  # the step really moved the weights


def _children(pid):
    """PIDs whose parent is ``pid`` (read from /proc, so no ps binary is needed)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:  # fields after "(comm)": state, ppid, ...
            kids.append(int(stat.parent.name))
    return kids


def test_a_killed_rank_stops_the_run_and_it_resumes(digits_teacher, tmp_path):
    out = tmp_path / "run"
    args = ["-m", "dfkd", "distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
            "--method", "pre-dfkd", "--iterations", "60", "--set", "checkpoint_every=5", "--out", str(out), *TINY]
    proc = subprocess.Popen([*TORCHRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "state.pt").exists():
        assert proc.poll() is None and time.time() - t0 < 240, proc.communicate()
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)  # the survivor does not hang
    assert proc.returncode != 0
    state = load_run_state(out / "state.pt")
    assert state["world_size"] == 2 and 0 < state["loop"]["done"] < 60
    # The checkpoint belongs to 2 processes: one process may not resume it ...
    assert_clear_error(run_cli("resume", str(out)), "written by 2 process(es)", "this run has 1")
    # ... two may, and finish the run.
    r = torchrun("-m", "dfkd", "distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student",
                 "lenet5-half", "--method", "pre-dfkd", "--iterations", "60", "--set", "checkpoint_every=5",
                 "--out", str(out), *TINY, "--resume", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 60 and summary["ranks_consistent"]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r["iteration"] for r in rows if r["kind"] == "train"]
    assert train == list(range(10, 61, 10))  # no duplicated or missing rows across the crash


def test_sync_bn_on_cpu_is_a_clear_error(digits_teacher, tmp_path):
    r = torchrun("-m", "dfkd", "distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student",
                 "lenet5-half", "--method", "dfad", "--iterations", "2", "--set", "sync_bn=true", "--out",
                 str(tmp_path / "run"), *TINY[:2], "--quiet")
    assert r.returncode != 0 and "sync_bn needs GPUs" in r.stderr
