"""Objective terms, synthesizers and the pool, checked against hand computations; ADI and CMI refuse a teacher
without BatchNorm with one clear line."""

import pytest
import torch
import torch.nn.functional as F

from dfkd import DfkdError, create_model
from dfkd.data import dataset_info
from dfkd.data.augment import random_resized_crop
from dfkd.engine import distill
from dfkd.synthesizers import SyntheticPool
from dfkd.synthesizers.pixels import jitter_flip
from dfkd.terms import TERMS, Passes
from dfkd.terms.adversarial import clamped_js
from dfkd.terms.contrastive import FeatureBank
from dfkd.terms.image_priors import input_statistics, total_variation
from dfkd.terms.teacher_priors import boundary


def test_every_term_is_registered_with_a_docstring_formula():
    for name in TERMS.names():
        cls = TERMS.get(name)
        assert cls.__doc__ and cls.log_name, name


def test_total_variation_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]])  # (1, 1, 2, 2)
    # right: |0-1|, |3-7| -> 2.5 ; down: |0-3|, |1-7| -> 4.5 ; diag /: |3-1| -> 2 ; diag \: |0-7| -> 7
    assert total_variation(x).item() == pytest.approx(2.5 + 4.5 + 2 + 7)


def test_input_statistics_by_hand_and_the_frame_left_out():
    x = torch.full((2, 2, 8, 8), -5.0)  # the frame: far from the statistics, and left out with border=2
    x[:, 0, 2:-2, 2:-2] = 0.5  # channel 0: mean 0.5, variance 0
    x[0, 1, 2:-2, 2:-2], x[1, 1, 2:-2, 2:-2] = 1.0, -1.0  # channel 1: mean 0, variance 1 (the target)
    expected = torch.tensor([0.5, 0.0]).norm() + torch.tensor([-1.0, 0.0]).norm()
    assert input_statistics(x, border=2).item() == pytest.approx(expected.item())
    assert input_statistics(x).item() > 5  # with the frame in, its -5 pixels dominate
    assert input_statistics(torch.randn(256, 3, 16, 16, generator=torch.Generator().manual_seed(0))).item() < 0.02


def test_boundary_soft_targets_by_hand():
    """Sample b's target mixes its top two teacher classes with weight l_b = max_mix * b / (B - 1); with max_mix 0
    the term is the one-hot prior."""
    t = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0], [1.0, 0.0, 0.5]])  # top two: (0, 2), (1, 2), (0, 2)
    logp = F.log_softmax(t, 1)
    mix = [0.0, 0.2, 0.4]
    expected = -((1 - mix[0]) * logp[0, 0] + mix[0] * logp[0, 2] + (1 - mix[1]) * logp[1, 1] + mix[1] * logp[1, 2]
                 + (1 - mix[2]) * logp[2, 0] + mix[2] * logp[2, 2]) / 3
    assert boundary(t, 0.4).item() == pytest.approx(expected.item(), rel=1e-6)
    assert boundary(t, 0.0).item() == pytest.approx(F.cross_entropy(t, t.argmax(1)).item(), rel=1e-6)
    # the gradient moves each sample toward its mixed target: the runner-up class of the last sample gains
    t = t.clone().requires_grad_(True)
    boundary(t, 0.4).backward()
    assert t.grad[2, 2] < 0 and t.grad[2, 0] < 0  # both target classes' logits are pushed up
    assert t.grad[2, 1] > 0


def test_clamped_js_by_hand_and_competition_range():
    s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    p, q = F.softmax(s / 3, 1), F.softmax(t / 3, 1)
    m = (p + q) / 2
    expected = 0.5 * (m * (m.log() - p.log())).sum() + 0.5 * (m * (m.log() - q.log())).sum()
    assert clamped_js(s, t).item() == pytest.approx(expected.item(), rel=1e-5)
    term = TERMS.get("competition")(None)
    assert 0.0 <= term(Passes(x=torch.zeros(1), t_logits=t, s_logits=s)).item() <= 1.0


def test_masked_kl_only_counts_samples_the_student_gets_right():
    t = torch.tensor([[3.0, 0.0], [3.0, 0.0]])
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # agrees on sample 0 only
    kl0 = (F.softmax(t[0], 0) * (F.log_softmax(t[0], 0) - F.log_softmax(s[0], 0))).sum()
    term = TERMS.get("adversarial_kl_masked")(None)
    assert term(Passes(x=torch.zeros(2), t_logits=t, s_logits=s)).item() == pytest.approx(-kl0.item() / 2, rel=1e-5)


def test_objective_builds_positive_weights_only_and_a_term_without_its_targets_is_an_error():
    import contextlib
    from dfkd.parts import PartContext
    from dfkd.terms import Objective
    net = create_model("lenet5-half", num_classes=10, in_channels=1).eval()
    ctx = PartContext(net, net, dataset_info("digits"), None, torch.contiguous_format, contextlib.nullcontext,
                      lambda m: m)
    obj = Objective([("class_ce", 2.0), ("one_hot", 0.0)], ctx)
    assert [t.log_name for t in obj.terms] == ["class_ce"]
    with pytest.raises(DfkdError, match="target classes"):
        obj.passes(torch.randn(2, 1, 32, 32))
    targets = torch.tensor([1, 2])
    p = obj.passes(torch.randn(2, 1, 32, 32), targets=targets)
    loss, logs = obj(p)
    assert set(logs) == {"g_class_ce"}
    assert loss.item() == pytest.approx(2 * F.cross_entropy(p.t_logits, targets).item(), rel=1e-6)


@pytest.mark.parametrize("method", ["adi", "cmi"])
def test_bn_free_teacher_is_a_clear_error(method):
    info = dataset_info("digits")
    lenet = create_model("lenet5", num_classes=10, in_channels=1, input_size=32)
    with pytest.raises(DfkdError, match="BatchNorm layers.*LeNet5 \\(|LeNet5.*BatchNorm|has none"):
        distill(lenet, "lenet5-half", method, {"iterations": 1}, info=info, progress=False)


def test_pool_quantises_stores_logits_and_restores_any_fill():
    info = dataset_info("cifar10")
    pool = SyntheticPool(5, info)
    x = torch.randn(3, 3, 32, 32)
    q = pool.quantize(x)
    assert torch.allclose(pool.quantize(q), q)  # already on the 8-bit grid
    pool.add(q, torch.arange(30.0).view(3, 10))
    last = pool.quantize(torch.randn(4, 3, 32, 32))
    pool.add(last, torch.ones(4, 10))  # 7 > 5: the two oldest go
    assert len(pool) == 5 and int(pool.added) == 7
    assert pool.logits[:, 0].tolist().count(1.0) == 4 and 20.0 in pool.logits[:, 0].tolist()
    assert torch.allclose(pool.newest(4), last)  # the last round, oldest first
    xs, ts = pool.sample(6)
    assert xs.shape == (6, 3, 32, 32) and ts.shape == (6, 10)
    other = SyntheticPool(5, info)
    other.load_state_dict(pool.state_dict())
    assert torch.equal(other.images, pool.images) and torch.equal(other.logits, pool.logits)
    from dfkd.parts import module_bytes
    assert module_bytes(pool) == 5 * 3 * 32 * 32 + 5 * 10 * 4 + 2 * 8


def test_feature_bank_is_a_ring_that_grows_to_capacity():
    bank = FeatureBank(4, 2)
    assert bank.sample(3).shape == (0, 2)
    bank.push(torch.tensor([[1.0, 1], [2, 2], [3, 3]]))
    bank.push(torch.tensor([[4.0, 4], [5, 5]]))
    assert len(bank) == 4 and sorted(bank.rows[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    other = FeatureBank(4, 2)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.rows, bank.rows)


def test_random_resized_crop_keeps_shape_and_passes_gradients():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False)
    assert torch.allclose(y, x, atol=1e-5)  # the full box is the identity
    y = random_resized_crop(x)
    y.sum().backward()
    assert y.shape == x.shape and x.grad is not None and x.grad.abs().sum() > 0


def test_jitter_flip_is_a_roll_and_maybe_a_mirror():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = jitter_flip(x, 1, True)
    candidates = [torch.roll(v, (dy, dx), (2, 3)) for v in (x, x.flip(3)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    candidates += [torch.roll(x, (dy, dx), (2, 3)).flip(3) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert any(torch.equal(y, c) for c in candidates)


def test_views_and_feature_memory_create_their_tensors_on_the_batch_device():
    """On PyTorch's ``meta`` device a tensor created without ``device=`` lands on the CPU and the op mixing it
    with the batch fails: what a CUDA run would hit."""
    x = torch.rand(4, 3, 8, 8, device="meta")
    assert random_resized_crop(x).device.type == "meta"
    bank = FeatureBank(4, 2).to("meta")
    bank.push(torch.zeros(3, 2, device="meta"))
    assert bank.sample(2).device.type == "meta"
