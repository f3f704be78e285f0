"""Each suite's definition runs end to end with a tiny budget; the results and table are checked for content."""
import dataclasses
import json
import pickle

import numpy as np
import pytest
import yaml

from dfkd import create_model, model_payload, save_checkpoint
from dfkd.bench import SUITES, get_suite, run_suite
from dfkd.data import load_dataset

from conftest import run_cli

TINY = {"batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8, "signal_samples": 64}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-digits")


@pytest.mark.slow  # trains the digits suite teacher
def test_digits_suite_tiny_budget_and_skip(digits_dir):
    tmp_path = digits_dir
    suite = get_suite("digits")
    lines = []
    result = run_suite(suite, tmp_path, methods=["noise", "pre-dfkd"], seeds=[0, 1], iterations=4, progress=False,
                       log=lines.append, overrides=TINY)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"].keys() == {"noise", "pre-dfkd"}
    assert saved["results"]["pre-dfkd"]["n"] == 2 and saved["results"]["pre-dfkd"]["seeds"] == [0, 1]
    for run in saved["runs"]:
        assert run["iterations"] == 4 and 0 <= run["final"] <= 100
    assert saved["results"]["pre-dfkd"]["replay_memory_bytes"] > 0 and saved["results"]["noise"]["replay_memory_bytes"] == 0
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("| method |") and "| pre-dfkd | 2 |" in table and "| noise | 2 |" in table
    assert "| signal rho | acc @ best signal |" in table.splitlines()[0]
    rho = saved["results"]["pre-dfkd"]["signal_spearman"]
    assert rho != rho or -1 <= rho <= 1  # NaN when a tiny run's curve is flat
    assert (tmp_path / "accuracy.png").stat().st_size > 1000 and (tmp_path / "samples-pre-dfkd-s0.png").exists()
    assert (tmp_path / "accuracy-time.png").stat().st_size > 1000
    assert result["table"] == table.strip()
    for run in saved["runs"]:  # what the teacher makes of the saved samples: every sample counted once
        panels = run["samples"]
        assert set(panels) == ({"novel", "replay"} if run["method"] == "pre-dfkd" else {"novel"})
        assert all(sum(p["teacher_class_counts"]) == p["n"] == 64 for p in panels.values())
    # Rerunning skips the finished runs and reuses the teacher.
    lines.clear()
    run_suite(suite, tmp_path, methods=["noise"], seeds=[0], iterations=4, progress=False, log=lines.append,
              overrides=TINY)
    assert any("skipped" in l for l in lines) and not any("teacher" in l for l in lines)
    # An interrupted run (final files missing, checkpoint present) continues from its checkpoint to the same end.
    run = tmp_path / "pre-dfkd-s1"
    before = json.loads((run / "summary.json").read_text())
    for name in ("summary.json", "student.pt"):
        (run / name).unlink()
    lines.clear()
    again = run_suite(suite, tmp_path, methods=["pre-dfkd"], seeds=[1], iterations=4, progress=False,
                      log=lines.append, overrides=TINY, plots=False)
    assert any("(resuming)" in l for l in lines)
    after = again["runs"][0]
    assert {k: after[k] for k in ("mu", "final", "evaluations")} == {k: before[k] for k in ("mu", "final", "evaluations")}


@pytest.mark.slow
def test_bench_cli_json(digits_dir):
    # Reuses the suite directory (and so the teacher) of the test above.
    r = run_cli("bench", "--suite", "digits", "--methods", "dfad", "--seeds", "3", "--iterations", "2", "--out",
                str(digits_dir), "--json", "--quiet", *sum([["--set", f"{k}={v}"] for k, v in TINY.items()], []))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["suite"] == "digits" and out["results"]["dfad"]["seeds"] == [3]
    assert out["results"]["dfad"]["teacher_acc"] > 90  # the suite's real digits teacher
    # another student: the run above is not reused, the new one is made with the student asked for
    r = run_cli("bench", "--suite", "digits", "--methods", "dfad", "--seeds", "3", "--iterations", "2", "--out",
                str(digits_dir), "--student", "cnn-bn-quarter", "--quiet",
                *sum([["--set", f"{k}={v}"] for k, v in TINY.items()], []))
    assert r.returncode == 0, r.stderr
    assert "skipped" not in r.stdout and "[1/1] dfad seed 3: 2 iterations" in r.stdout
    saved = yaml.safe_load((digits_dir / "dfad-s3" / "config.yaml").read_text())
    assert saved["student_arch"] == "cnn-bn-quarter"
    assert json.loads((digits_dir / "results.json").read_text())["student_arch"] == "cnn-bn-quarter"


def test_bench_cli_unknown_suite_and_method(tmp_path):
    r = run_cli("bench", "--suite", "imagenet", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown suite 'imagenet'" in r.stderr
    r = run_cli("bench", "--suite", "digits", "--methods", "magic", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown method 'magic'" in r.stderr
    r = run_cli("bench", "--suite", "digits", "--student", "magicnet", "--out", str(tmp_path / "st"))
    assert r.returncode == 2 and "unknown model 'magicnet'" in r.stderr and not (tmp_path / "st").exists()
    # a setting one of the suite's methods cannot take fails before the teacher is trained or any run starts
    r = run_cli("bench", "--suite", "fashion-mnist-bn", "--methods", "pre-dfkd+,adi,cmi", "--set", "w_tv=0.1",
                "--out", str(tmp_path / "bn"))
    assert r.returncode == 2 and "'cmi' does not use w_tv" in r.stderr
    assert not (tmp_path / "bn").exists()


def write_fake_cifar(root, name, n_classes, rng):
    """A tiny release in the official pickle format (the real files need a download)."""
    if name == "cifar10":
        d = root / "cifar-10-batches-py"
        d.mkdir(parents=True)
        for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (d / f).write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                                              b"labels": list(rng.integers(0, n_classes, 4))}))
    else:
        d = root / "cifar-100-python"
        d.mkdir(parents=True)
        for f in ("train", "test"):
            (d / f).write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (8, 3072)).astype(np.uint8),
                                              b"fine_labels": list(rng.integers(0, n_classes, 8))}))


@pytest.mark.slow  # builds each suite's networks (ResNet-34 for the paper suites)
@pytest.mark.parametrize("name", ["fashion-mnist", "fashion-mnist-bn", "cifar10-cpu", "cifar10-paper", "cifar100-paper"])
def test_suites_start_and_run_on_cpu(name, tmp_path):
    suite = get_suite(name)
    n_classes = 100 if suite.dataset == "cifar100" else 10
    if suite.dataset == "fashion-mnist":
        from test_data import write_idx_set
        write_idx_set(tmp_path / "data")
    else:
        write_fake_cifar(tmp_path / "data", suite.dataset, n_classes, np.random.default_rng(0))
    data = load_dataset(suite.dataset, data_dir=tmp_path / "data", download=False)
    # A pre-made (untrained) teacher of the suite's architecture: the suite reuses it instead of training one.
    kw = {"num_classes": n_classes, "in_channels": data.info.in_channels, "input_size": 32}
    teacher = create_model(suite.teacher_arch, **kw)
    save_checkpoint(model_payload(teacher, suite.teacher_arch, kw, data.info), tmp_path / "out" / "teacher" / "teacher.pt")
    methods = ["pre-dfkd"] + (["pre-dfkd+"] if "pre-dfkd+" in suite.methods else [])
    # (a warm-up of 1 generator update instead of cifar10-cpu's 200: the path runs, not its cost)
    overrides = {"batch_size": 4, "student_steps": 1, "vae_updates": 1, "signal_samples": 16, "generator_warmup": 1}
    result = run_suite(suite, tmp_path / "out", methods=methods, seeds=[0], iterations=1, progress=False,
                       data_dir=tmp_path / "data", log=lambda m: None, plots=False, overrides=overrides)
    assert [r["method"] for r in result["runs"]] == methods
    for run in result["runs"]:
        assert run["iterations"] == 1 and run["student_params"] > 1e4
    # The suite's own paper-scale settings are kept apart from the test's overrides; its per-method settings
    # (e.g. pre-dfkd+'s generator jitter on fashion-mnist) reach each method's run.
    cfg = result["configs"]["pre-dfkd"]
    assert cfg["batch_size"] == 4
    for m in methods:
        used = yaml.safe_load((tmp_path / "out" / f"{m}-s0" / "config.yaml").read_text())["config"]
        for key, value in suite.method_config.get(m, {}).items():
            if key not in overrides and key not in ("iterations", "eval_every"):
                assert used[key] == value, (m, key)
    if name.endswith("paper"):
        assert suite.config["batch_size"] == 1024 and suite.config["iterations"] == 400 * 36


def test_every_suite_is_tested():
    assert set(SUITES.names()) == {"digits", "fashion-mnist", "fashion-mnist-bn", "cifar10-cpu", "cifar10-paper",
                                   "cifar100-paper"}


@pytest.mark.parametrize("name", SUITES.names())
def test_every_method_of_every_suite_has_a_valid_config(name):
    from dfkd.engine.loop import resolve_config
    from dfkd.methods import get_method
    suite = get_suite(name)
    for student in [suite.student_arch, *suite.student_method_config]:
        s = dataclasses.replace(suite, student_arch=student)
        assert set(s.student_method_config.get(student, {})) <= set(suite.methods), student
        for method in suite.methods:
            cfg = resolve_config(get_method(method), s.method_overrides(method))
            assert cfg.iterations > 0 and cfg.student_steps > 0, (student, method)


def test_suite_settings_follow_the_student():
    # fashion-mnist-bn: its pool methods train its BatchNorm student at DataFree's lr 0.1, LeNet-5-half at 0.02;
    # the settings other students share are the suite's own
    suite = get_suite("fashion-mnist-bn")
    lenet = dataclasses.replace(suite, student_arch="lenet5-half")
    other = dataclasses.replace(suite, student_arch="lenet5")
    for method in ("adi", "cmi", "fast"):
        assert suite.method_overrides(method)["lr_student"] == 0.1
        assert lenet.method_overrides(method)["lr_student"] == 0.02
        assert other.method_overrides(method) == suite.method_overrides(method)
        assert {k: v for k, v in lenet.method_overrides(method).items() if k != "lr_student"} == \
            {k: v for k, v in suite.method_overrides(method).items() if k != "lr_student"}
    assert lenet.method_overrides("pre-dfkd+") == suite.method_overrides("pre-dfkd+")
