"""Losses against values computed by hand (or by an independent formula) on tiny cases."""
import math

import pytest
import torch

from dfkd import losses
from dfkd.engine import robustness_summary
from dfkd.replay.vae import kl_to_standard_normal, vae_loss


def test_kd_kl_matches_definition():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    T = 2.0
    ps, pt = torch.softmax(s / T, 1), torch.softmax(t / T, 1)
    expected = (pt * (pt.log() - ps.log())).sum(1).mean() * T**2
    assert losses.kd_kl(s, t, T).item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses.kd_kl(t, t, T).item() == pytest.approx(0.0, abs=1e-7)


def test_logits_l1():
    assert losses.logits_l1(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]])).item() == pytest.approx(1.5)


def test_class_balance_weights_give_every_present_class_the_same_total_weight():
    t = torch.zeros(6, 3)
    t[:4, 0] = 5.0  # four samples of class 0, one each of classes 1 and 2
    t[4, 1] = t[5, 2] = 5.0
    w = losses.class_balance_weights(t)
    assert torch.allclose(w, torch.tensor([0.5, 0.5, 0.5, 0.5, 2.0, 2.0]))  # 6 / (3 classes * count)
    assert w.mean().item() == pytest.approx(1.0)
    t2 = torch.zeros(4, 10)
    t2[:2, 3] = t2[2:, 7] = 1.0  # two classes present out of ten, balanced: every weight 1
    assert torch.equal(losses.class_balance_weights(t2), torch.ones(4))


def test_weighted_student_losses_by_hand():
    s, t = torch.tensor([[1.0, -1.0], [0.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    w = torch.tensor([0.5, 1.5])
    assert losses.logits_l1(s, t, w).item() == pytest.approx((0.5 * 1.5 + 1.5 * 1.0) / 2)
    assert losses.logits_l1(s, t, torch.ones(2)).item() == pytest.approx(losses.logits_l1(s, t).item())
    per = [losses.kd_kl(s[i:i + 1], t[i:i + 1], 2.0).item() for i in range(2)]
    assert losses.kd_kl(s, t, 2.0, w).item() == pytest.approx((0.5 * per[0] + 1.5 * per[1]) / 2, rel=1e-6)
    assert losses.kd_kl(s, t, 2.0, torch.ones(2)).item() == pytest.approx(losses.kd_kl(s, t, 2.0).item(), rel=1e-6)


def test_dafl_priors_by_hand():
    t = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    p = 1 / (1 + math.exp(-2))  # softmax of the max entry
    assert losses.one_hot(t).item() == pytest.approx(-math.log(p), rel=1e-6)
    # batch-mean softmax is (0.5, 0.5): sum p log10 p = log10(0.5)
    assert losses.info_entropy(t).item() == pytest.approx(math.log10(0.5), rel=1e-6)
    assert losses.activation(torch.tensor([[1.0, -3.0]])).item() == pytest.approx(-2.0)


def test_js_divergence_bounds_and_value():
    a = torch.tensor([[100.0, -100.0]])
    b = torch.tensor([[-100.0, 100.0]])
    assert losses.js_divergence(a, b).item() == pytest.approx(math.log(2), rel=1e-5)  # disjoint: ln 2
    assert losses.bounded_js_divergence(a, b, temperature=1.0).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.bounded_js_divergence(a, a, temperature=1.0).item() == pytest.approx(1.0, abs=1e-6)
    p, q = torch.tensor([0.25, 0.75]), torch.tensor([0.5, 0.5])
    m = (p + q) / 2
    expected = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    assert losses.js_divergence(p.log()[None], q.log()[None]).item() == pytest.approx(expected.item(), rel=1e-5)


def test_js_gradient_is_not_vanishing_at_saturation():
    # The official clamp to [0.01, 0.99] zeroes this gradient; ours keeps it.
    s = torch.tensor([[8.0, -8.0]], requires_grad=True)
    losses.bounded_js_divergence(s, torch.tensor([[8.0, -8.0]]) * 1.0, temperature=1.0).backward()
    assert s.grad.abs().sum() > 0


def test_vae_loss_by_hand():
    x = torch.tensor([[[[1.0, 2.0]]]])  # (1, 1, 1, 2)
    x_hat = torch.tensor([[[[1.5, 1.0]]]])
    t_x, t_hat = torch.tensor([[1.0, 0.0, 3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # pixel: (0.5 + 1) / 2 = 0.75; teacher: (1 + 0 + 2) / 3 = 1; KL: -1/2 [(1 + 0 - 1 - 1) + (1 + ln2 - 0 - 2)]
    kl = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2) - 0 - 2))
    out = vae_loss(x, x_hat, t_x, t_hat, mu, logvar, w_pixel=1.0, w_teacher=2.0, w_kl=0.1)
    assert out["vae_pixel"].item() == pytest.approx(0.75)
    assert out["vae_teacher"].item() == pytest.approx(1.0)
    assert out["vae_kl"].item() == pytest.approx(kl, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.75 + 2.0 + 0.1 * kl, rel=1e-6)
    assert kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


@pytest.mark.parametrize("curve,expected", [
    ([10.0, 20.0, 30.0], {"mu": 20.0, "sigma2": 200.0 / 3, "peak": 30.0, "final": 30.0, "max_drop": 0.0}),
    ([50.0, 80.0, 60.0, 90.0, 70.0], {"mu": 70.0, "sigma2": 200.0, "peak": 90.0, "final": 70.0, "max_drop": 20.0}),
    ([42.0], {"mu": 42.0, "sigma2": 0.0, "peak": 42.0, "final": 42.0, "max_drop": 0.0}),
])
def test_robustness_summary_on_hand_made_curves(curve, expected):
    got = robustness_summary(curve)
    assert got == pytest.approx(expected)


def test_robustness_summary_empty_is_nan():
    assert all(math.isnan(v) for v in robustness_summary([]).values())
