"""End to end on real data (digits) with a BatchNorm teacher: ADI, CMI and Fast-DFKD, which match the teacher's
BatchNorm statistics, clearly beat a student distilled on pure Gaussian noise with the same student budget.

Teacher: cnn-bn at width 16, 8 epochs (98.6 % test accuracy). Budget: 10 rounds x 40 student steps x 64 pool
samples; ADI 30 pixel steps per round, CMI 15 generator steps, Fast 5 steps from its meta-generator (no
synthesis-only rounds, so its student gets the same 10 rounds). The student lr is 0.02: DataFree's 0.1 with KL
at T = 20 is tuned for BatchNorm students and kept LeNet-5-half near 25 % (0.02: 59 %). Measured mu for seeds
0 / 1 / 2 (2026-11-25): noise 10.0 / 10.0 / 10.0 (this teacher calls all noise one class), ADI 34.8 / 25.3 /
22.0, CMI 29.4 / 37.2 / 41.8; Fast (2026-11-27) 60.3 / 60.9 / 46.0. A method whose synthesis or pool is broken
stays at the noise level."""
import pytest
import torch

from dfkd import create_model, load_dataset, recipe, train_teacher
from dfkd.engine import distill

pytestmark = pytest.mark.slow

BUDGET = {"iterations": 10, "batch_size": 64, "student_steps": 40, "eval_every": 5, "seed": 0}
METHOD = {"noise": {"lr_student": 0.1}, "adi": {"generator_steps": 30, "lr_student": 0.02},
          "cmi": {"generator_steps": 15, "generator_width": 16, "latent_dim": 64, "lr_student": 0.02},
          "fast": {"generator_steps": 5, "generator_width": 16, "latent_dim": 64, "lr_student": 0.02,
                   "synthesis_warmup": 0}}


@pytest.fixture(scope="module")
def setup():
    data = load_dataset("digits")
    torch.manual_seed(0)
    teacher = create_model("cnn-bn", width=16, num_classes=10, in_channels=1, input_size=32)
    train_teacher(teacher, data, recipe("digits", epochs=8), progress=False)
    noise = distill(teacher, "lenet5-half", "noise", {**BUDGET, **METHOD["noise"]}, info=data.info, eval_data=data,
                    progress=False).summary
    return data, teacher, noise


@pytest.mark.parametrize("method", ["adi", "cmi", "fast"])
def test_inversion_method_beats_noise_with_a_bn_teacher(setup, method):
    data, teacher, noise = setup
    s = distill(teacher, "lenet5-half", method, {**BUDGET, **METHOD[method]}, info=data.info, eval_data=data,
                progress=False).summary
    assert s["teacher_acc"] > 95
    assert s["replay_memory_bytes"] >= 10 * 64 * 32 * 32  # the pool holds every round's images (8-bit)
    assert s["mu"] >= noise["mu"] + 10 and s["final"] >= noise["final"] + 10, (s, noise)
