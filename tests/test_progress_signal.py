"""The data-free progress signal: measured on a tiny run, logged with every evaluation and summarised, and
measuring it never changes the run (it draws from its own RNG)."""
import json
import math

import pytest
import torch

from dfkd import create_model
from dfkd.data import dataset_info
from dfkd.engine import distill
from dfkd.engine.progress_signal import signal_summary, spearman
from dfkd.methods import get_method

INFO = dataset_info("digits")
CFG = {"iterations": 6, "batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8,
       "eval_every": 2, "log_every": 2, "bf16": False, "channels_last": False, "vae_width": 4, "vae_latent_dim": 8,
       "vae_updates": 1, "signal_samples": 64}


def test_spearman_against_hand_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks a: 0, 1, 2 ; ranks b (tie on the first two): 0.5, 0.5, 2 -> r = 1.5 / sqrt(2 * 1.5) = 0.866
    assert spearman([1, 2, 3], [5, 5, 7]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_signal_summary_picks_the_accuracy_where_the_signal_peaked():
    s = signal_summary([50.0, 70.0, 60.0], [40.0, 90.0, 80.0])
    assert s["acc_at_best_signal"] == 70.0 and s["agree_novel_final"] == 80.0
    assert s["signal_spearman"] == pytest.approx(1.0)


def nets():
    torch.manual_seed(0)
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    return create_model("lenet5-half", **kw), create_model("lenet5-half", **kw)


@pytest.mark.parametrize("method", ["pre-dfkd", "dfad"])
def test_signal_is_logged_and_does_not_change_the_run(method, tmp_path):
    data = (torch.randint(0, 256, (30, 1, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (30,)))
    cfg = {k: v for k, v in CFG.items() if k in get_method(method).Config.__dataclass_fields__}
    with_signal = distill(*nets(), method, cfg, info=INFO, eval_data=data, out_dir=tmp_path / "a", progress=False)
    without = distill(*nets(), method, {**cfg, "signal_samples": 0}, info=INFO, eval_data=data, progress=False)
    s = with_signal.summary
    assert "agree_novel_final" not in without.summary
    a, b = with_signal.student.state_dict(), without.student.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # measuring did not perturb training
    evals = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert [e["iteration"] for e in evals] == [2, 4, 6]
    assert all("test_acc" in e and "agree_novel" in e for e in evals)
    assert all(("agree_replay" in e) == (method == "pre-dfkd") for e in evals)
    signal, accs = [e["agree_novel"] for e in evals], [e["test_acc"] for e in evals]
    assert s["agree_novel_final"] == signal[-1]
    assert s["acc_at_best_signal"] == accs[signal.index(max(signal))]
    assert s["signal_spearman"] == pytest.approx(spearman(signal, accs), nan_ok=True)
