"""The console command (``dfkd.cli.main``, in this process; ``python -m dfkd`` itself where marked): the happy
path and one clear error per input kind."""
import json

import pytest
import torch

from conftest import assert_clear_error, run_cli


def test_help_lists_subcommands():
    r = run_cli("--help", isolated=True)  # the real entry point, once
    assert r.returncode == 0
    for cmd in ("train-teacher", "eval", "import-teacher", "demo"):
        assert cmd in r.stdout
    assert run_cli("train-teacher", "--help").returncode == 0


def test_train_teacher_writes_checkpoint_metrics_config(digits_teacher):
    rows = [json.loads(l) for l in (digits_teacher / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert (digits_teacher / "config.yaml").read_text().count("epochs: 6") == 1
    ckpt = torch.load(digits_teacher / "teacher.pt", weights_only=True)
    assert ckpt["arch"]["name"] == "lenet5-half" and ckpt["dataset"]["name"] == "digits"
    assert ckpt["metrics"]["test_acc"] == rows[-1]["test_acc"]


def test_eval_json_per_class_and_confusion(digits_teacher):
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--json", "--per-class", "--confusion")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ckpt = torch.load(digits_teacher / "teacher.pt", weights_only=True)
    assert out["accuracy"] == pytest.approx(ckpt["metrics"]["test_acc"], abs=1e-6)
    assert out["n"] == 359 and len(out["per_class"]) == 10
    cm = torch.tensor(out["confusion"])  # rows: true class, columns: predicted
    assert cm.shape == (10, 10) and cm.sum() == 359
    assert cm.diagonal().sum() / 359 * 100 == pytest.approx(out["accuracy"], abs=1e-4)
    per_class = [100 * cm[c, c] / cm[c].sum() for c in range(10)]
    assert per_class == pytest.approx(list(out["per_class"].values()), abs=1e-4)
    text = run_cli("eval", str(digits_teacher / "teacher.pt"), "--confusion")
    assert text.returncode == 0 and "rows: true class" in text.stdout and len(text.stdout.splitlines()) == 12


def test_refuses_to_overwrite_a_teacher(digits_teacher):
    before = (digits_teacher / "teacher.pt").read_bytes()
    r = run_cli("train-teacher", "--dataset", "digits", "--arch", "lenet5-half", "--epochs", "1",
                "--out", str(digits_teacher))
    assert_clear_error(r, "already holds a run", "--overwrite")
    assert (digits_teacher / "teacher.pt").read_bytes() == before


def test_import_teacher_from_state_dict(digits_teacher, tmp_path):
    ckpt = torch.load(digits_teacher / "teacher.pt", weights_only=True)
    torch.save(ckpt["state_dict"], tmp_path / "w.pt")
    r = run_cli("import-teacher", str(tmp_path / "w.pt"), "--arch", "lenet5-half", "--dataset", "digits",
                "--out", str(tmp_path / "t.pt"))
    assert r.returncode == 0, r.stderr
    again = torch.load(tmp_path / "t.pt", weights_only=True)
    assert again["metrics"]["test_acc"] == pytest.approx(ckpt["metrics"]["test_acc"], abs=1e-6)


def test_error_unknown_dataset():  # through the real entry point: the one-line error and the exit status 2
    assert_clear_error(run_cli("train-teacher", "--dataset", "imagenet-9", "--arch", "lenet5", isolated=True),
                       "unknown dataset 'imagenet-9'", "digits")


def test_error_unknown_arch(tmp_path):
    assert_clear_error(run_cli("train-teacher", "--dataset", "digits", "--arch", "vgg99", "--out", str(tmp_path)),
                       "unknown model 'vgg99'", "lenet5")


def test_error_missing_checkpoint(tmp_path):
    assert_clear_error(run_cli("eval", str(tmp_path / "missing.pt")), "does not exist")


def test_error_corrupt_checkpoint(digits_teacher, tmp_path):
    blob = (digits_teacher / "teacher.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[:1000])
    assert_clear_error(run_cli("eval", str(tmp_path / "cut.pt")), "truncated or corrupt")


def test_error_pickled_module(tmp_path):
    from dfkd import create_model
    torch.save(create_model("lenet5-half", num_classes=10, in_channels=1), tmp_path / "whole.pt")
    assert_clear_error(run_cli("eval", str(tmp_path / "whole.pt")), "refused", "import-teacher")


def test_error_dataset_not_found(digits_teacher):
    # MNIST has no copy on this machine; DFKD_DATA is cleared so the shared data folder is not searched.
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--dataset", "mnist", "--data-dir", "/nonexistent",
                "--no-download", env_extra={"DFKD_DATA": ""})
    assert_clear_error(r, "data set 'mnist' not found", "/nonexistent")


def test_error_bad_number():
    r = run_cli("train-teacher", "--dataset", "digits", "--arch", "lenet5", "--epochs", "0")
    assert r.returncode == 2 and "positive integer" in r.stderr


def test_error_class_count_mismatch(digits_teacher, tmp_path):
    from test_data import write_tree
    write_tree(tmp_path / "tree", classes=("a", "b", "c"), size=(32, 32), mode="L")
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--dataset", f"imagefolder:{tmp_path / 'tree'}")
    assert_clear_error(r, "predicts 10 classes", "has 3")


TINY_SET = ["--set", "batch_size=16", "--set", "student_steps=1", "--set", "generator_width=4",
            "--set", "latent_dim=8", "--set", "bf16=false", "--set", "channels_last=false"]


def test_distill_cli_outputs_and_config_precedence(digits_teacher, tmp_path):
    (tmp_path / "c.yaml").write_text("iterations: 50\nlr_student: 0.05\nbatch_size: 8\n")
    out = tmp_path / "run"
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
                "--method", "dfad", "--eval-dataset", "digits", "--out", str(out), "--iterations", "3",
                "--eval-every", "1", "--config", str(tmp_path / "c.yaml"), *TINY_SET, "--quiet")
    assert r.returncode == 0, r.stderr
    assert {"student.pt", "metrics.jsonl", "summary.json", "config.yaml"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("mu", "sigma2", "peak", "final", "max_drop", "teacher_acc", "iterations", "wall_seconds",
                "student_params", "replay_memory_bytes"):
        assert key in summary
    assert summary["iterations"] == 3 and summary["evaluations"] == 3  # the flag beats the file
    assert "novel samples: teacher: " in r.stdout and summary["samples"]["novel"]["n"] == 64
    import yaml
    cfg = yaml.safe_load((out / "config.yaml").read_text())["config"]
    assert cfg["lr_student"] == 0.05 and cfg["batch_size"] == 16  # file < --set
    evals = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert [e["iteration"] for e in evals] == [1, 2, 3]
    assert summary["final"] == evals[-1]["test_acc"]
    # A second run into the same directory is refused and leaves the first intact.
    before = (out / "student.pt").read_bytes()
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
                "--method", "dfad", "--out", str(out), "--iterations", "1", *TINY_SET)
    assert_clear_error(r, "already holds a run", "--overwrite")
    assert (out / "student.pt").read_bytes() == before


def test_distill_cli_errors(digits_teacher, tmp_path):
    t = str(digits_teacher / "teacher.pt")
    assert_clear_error(run_cli("distill", "--teacher", t, "--student", "lenet5-half", "--method", "magic",
                               "--out", str(tmp_path / "a")), "unknown method 'magic'")
    assert_clear_error(run_cli("distill", "--teacher", t, "--student", "lenet5-half", "--set", "lr_studnet=1",
                               "--out", str(tmp_path / "b")), "unknown 'pre-dfkd' config key 'lr_studnet'")
    assert_clear_error(run_cli("distill", "--teacher", t, "--student", "lenet5-half", "--set", "batch_size=-4",
                               "--out", str(tmp_path / "c")), "batch_size", "positive")
    assert_clear_error(run_cli("distill", "--teacher", t, "--student", "lenet5-half", "--set", "lr_student=-1",
                               "--out", str(tmp_path / "d")), "lr_student", "non-negative")
    assert not (tmp_path / "b").exists()  # nothing written for a refused config


def test_import_has_no_side_effects(tmp_path):
    import subprocess
    import sys
    code = ("import torch; n = torch.get_num_threads(); s = torch.initial_seed(); import dfkd; "
            "assert torch.get_num_threads() == n and torch.initial_seed() == s")
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "DFKD_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, cache or home directory created


@pytest.mark.parametrize("kind,expected", [("methods", "pre-dfkd"), ("generators", "dcgan"),
                                           ("terms", "bn_statistics"), ("synthesizers", "generator")])
def test_list_shows_every_registry(kind, expected):
    r = run_cli("list", kind)
    assert r.returncode == 0, r.stderr
    assert any(line.split()[0] == expected for line in r.stdout.splitlines())


def _probe_many(path, n):
    from dfkd.cli.common import prepare_out_dir
    for _ in range(n):
        prepare_out_dir(path, "student.pt", overwrite=False)


def test_processes_preparing_one_out_dir_at_once_do_not_trip_each_other(tmp_path):
    """torchrun ranks check the same --out concurrently; each probes writability with a file of its own."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_probe_many, args=(tmp_path / "run", 300)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert list((tmp_path / "run").iterdir()) == []  # no probe left behind
