"""The console command through a real subprocess: the happy path and one clear error per input kind."""
import json

import pytest
import torch

from conftest import run_cli


def assert_clear_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("dfkd: error: "), result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    r = run_cli("train-teacher", "--dataset", "digits", "--arch", "lenet5-half", "--epochs", "3", "--out", str(out),
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    return out


def test_help_lists_subcommands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("train-teacher", "eval", "import-teacher", "demo"):
        assert cmd in r.stdout
    assert run_cli("train-teacher", "--help").returncode == 0


def test_train_teacher_writes_checkpoint_metrics_config(digits_teacher):
    rows = [json.loads(l) for l in (digits_teacher / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert (digits_teacher / "config.yaml").read_text().count("epochs: 3") == 1
    ckpt = torch.load(digits_teacher / "teacher.pt", weights_only=True)
    assert ckpt["arch"]["name"] == "lenet5-half" and ckpt["dataset"]["name"] == "digits"
    assert ckpt["metrics"]["test_acc"] == rows[-1]["test_acc"]


def test_eval_json_and_per_class(digits_teacher):
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--json", "--per-class")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ckpt = torch.load(digits_teacher / "teacher.pt", weights_only=True)
    assert out["accuracy"] == pytest.approx(ckpt["metrics"]["test_acc"], abs=1e-6)
    assert out["n"] == 359 and len(out["per_class"]) == 10


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


def test_error_unknown_dataset():
    assert_clear_error(run_cli("train-teacher", "--dataset", "imagenet-9", "--arch", "lenet5"),
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
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--dataset", "fashion-mnist", "--data-dir", "/nonexistent",
                "--no-download")
    assert_clear_error(r, "data set 'fashion-mnist' not found")


def test_error_bad_number():
    r = run_cli("train-teacher", "--dataset", "digits", "--arch", "lenet5", "--epochs", "0")
    assert r.returncode == 2 and "positive integer" in r.stderr


def test_error_class_count_mismatch(digits_teacher, tmp_path):
    from test_data import write_tree
    write_tree(tmp_path / "tree", classes=("a", "b", "c"), size=(32, 32), mode="L")
    r = run_cli("eval", str(digits_teacher / "teacher.pt"), "--dataset", f"imagefolder:{tmp_path / 'tree'}")
    assert_clear_error(r, "predicts 10 classes", "has 3")
