"""--tensorboard: event files readable by TensorBoard's own reader, mirroring metrics.jsonl, resume-safe."""
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import tiny_method_config, tiny_teacher
from dfkd import create_model
from dfkd.data import dataset_info
from dfkd.engine import distill
from dfkd.methods import METHODS

INFO = dataset_info("digits")
CFG = {"iterations": 4, "batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8,
       "eval_every": 2, "log_every": 1, "checkpoint_every": 2, "bf16": False, "channels_last": False,
       "vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2, "signal_samples": 8}


def nets():
    torch.manual_seed(1)
    return tiny_teacher("pre-dfkd"), create_model("lenet5-half", num_classes=10, in_channels=1, input_size=32)


def events(run):
    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_events_mirror_metrics_and_show_samples(tmp_path):
    data = (torch.randint(0, 256, (20, 1, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (20,)))
    teacher, student = nets()
    distill(teacher, student, "pre-dfkd", tiny_method_config("pre-dfkd", CFG), info=INFO, eval_data=data,
            out_dir=tmp_path, progress=False, tensorboard=True)
    acc = events(tmp_path)
    tags = acc.Tags()
    assert {"train/s_loss", "train/g_loss", "train/vae_loss", "eval/test_acc", "eval/agree_novel",
            "eval/teacher_acc"} <= set(tags["scalars"])
    assert {"samples/novel", "samples/replay"} <= set(tags["images"])
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [(r["iteration"], r["s_loss"]) for r in rows if r["kind"] == "train"]
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in acc.Scalars("train/s_loss")] == train
    evals = [(r["iteration"], r["test_acc"]) for r in rows if r["kind"] == "eval"]
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in acc.Scalars("eval/test_acc")] == evals
    assert [e.step for e in acc.Images("samples/novel")] == [2, 4]


def test_a_resumed_run_has_each_step_once(monkeypatch, tmp_path):
    cfg = tiny_method_config("pre-dfkd", CFG)
    original = METHODS.get("pre-dfkd").iteration

    def crashing(self, it):
        if it == 3:
            raise RuntimeError("crash")
        return original(self, it)

    monkeypatch.setattr(METHODS.get("pre-dfkd"), "iteration", crashing)
    teacher, student = nets()
    with pytest.raises(RuntimeError):  # rows 1..3 logged, the checkpoint is at 2
        distill(teacher, student, "pre-dfkd", cfg, info=INFO, out_dir=tmp_path, progress=False, tensorboard=True)
    monkeypatch.setattr(METHODS.get("pre-dfkd"), "iteration", original)
    teacher, student = nets()
    distill(teacher, student, "pre-dfkd", cfg, info=INFO, out_dir=tmp_path, progress=False, tensorboard=True,
            resume=True)
    steps = [e.step for e in events(tmp_path).Scalars("train/s_loss")]
    assert steps == [1, 2, 3, 4]


def test_tensorboard_needs_an_output_directory():
    from dfkd import DfkdError

    teacher, student = nets()
    with pytest.raises(DfkdError, match="tensorboard needs the run's output directory"):
        distill(teacher, student, "pre-dfkd", tiny_method_config("pre-dfkd", CFG), info=INFO, progress=False,
                tensorboard=True)
