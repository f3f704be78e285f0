"""Generator priors: the BatchNorm-statistics loss against a hand computation, its hooks leave the teacher
as they found it, and a teacher without BN is a clear error."""
import pytest
import torch
from torch import nn

from conftest import assert_clear_error, run_cli
from dfkd import DfkdError, create_model
from dfkd.data import dataset_info
from dfkd.engine import distill
from dfkd.terms import BNStatistics, batchnorm_layers


def tiny_bn_teacher():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    net(torch.randn(2, 1, 8, 8))  # materialise the lazy layer
    bn = net[1]
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
    return net.eval()


def test_bn_statistics_loss_matches_a_hand_computation():
    net = tiny_bn_teacher()
    x = torch.randn(5, 1, 8, 8)
    with BNStatistics(net) as prior:
        with prior.recording():
            net(x)
        got = prior.loss()
    f = net[0](x)  # (5, 3, 6, 6): what BN sees
    mean = f.mean(dim=(0, 2, 3))
    var = ((f - mean.view(1, 3, 1, 1)) ** 2).mean(dim=(0, 2, 3))  # biased, as BN computes it
    expected = ((mean - torch.tensor([0.5, -1.0, 2.0])) ** 2).sum().sqrt() \
        + ((var - torch.tensor([1.0, 4.0, 0.25])) ** 2).sum().sqrt()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def _bn_input_stats(net, x):
    f = net[0](x)  # what BN sees
    return f.mean(dim=(0, 2, 3)), f.var(dim=(0, 2, 3), unbiased=False)


def test_bn_momentum_matches_the_batch_together_with_an_ema_of_earlier_batches():
    """Fast-DFKD's bn_mmt: before remember() the plain statistics; after, (1 - m) batch + m EMA, the EMA folding in
    each remembered batch (m EMA + (1 - m) last); the EMA is a buffer that round-trips."""
    net, m = tiny_bn_teacher(), 0.75
    target_mean, target_var = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 4.0, 0.25])
    xs = [torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    stats = [_bn_input_stats(net, x) for x in xs]

    def expected(mean, var):
        return ((mean - target_mean).norm() + (var - target_var).norm()).item()

    with BNStatistics(net, momentum=m) as prior:
        got = []
        for x in xs:
            with prior.recording():
                net(x)
            got.append(prior.loss().item())
            prior.remember()
        state = prior.state_dict()
    (m0, v0), (m1, v1), (m2, v2) = stats
    assert got[0] == pytest.approx(expected(m0, v0), rel=1e-5)  # nothing remembered yet
    assert got[1] == pytest.approx(expected((1 - m) * m1 + m * m0, (1 - m) * v1 + m * v0), rel=1e-5)
    ema_mean, ema_var = m * m0 + (1 - m) * m1, m * v0 + (1 - m) * v1
    assert got[2] == pytest.approx(expected((1 - m) * m2 + m * ema_mean, (1 - m) * v2 + m * ema_var), rel=1e-5)
    assert torch.allclose(state["ema_mean_0"], m * ema_mean + (1 - m) * m2, atol=1e-6)
    assert bool(state["ema_ready"])
    other = BNStatistics(tiny_bn_teacher(), momentum=m)
    other.load_state_dict(state)
    assert torch.equal(other.ema_var_0, state["ema_var_0"])
    other.remove()
    assert "ema_mean_0" not in BNStatistics(tiny_bn_teacher()).state_dict()  # no momentum: no state


def test_hooks_only_record_inside_recording_and_are_removed():
    net = tiny_bn_teacher()
    bn = net[1]
    prior = BNStatistics(net)
    assert len(bn._forward_hooks) == 1 and prior.attached
    net(torch.randn(2, 1, 8, 8))
    with pytest.raises(RuntimeError):
        prior.loss()  # the pass outside recording() was not collected
    prior.remove()
    assert len(bn._forward_hooks) == 0 and not prior.attached


def test_distill_with_the_bn_prior_logs_it_and_detaches_its_hooks():
    info = dataset_info("fashion-mnist")
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    teacher, student = create_model("cnn-bn", **kw), create_model("lenet5-half", **kw)
    hooks_before = sum(len(m._forward_hooks) for m in teacher.modules())
    cfg = {"iterations": 2, "batch_size": 16, "student_steps": 1, "generator_width": 4, "latent_dim": 8,
           "log_every": 1, "w_bn": 0.5, "bf16": False, "channels_last": False}
    res = distill(teacher, student, "dfad", cfg, info=info, progress=False)
    assert len(batchnorm_layers(teacher)) > 0
    assert sum(len(m._forward_hooks) for m in teacher.modules()) == hooks_before
    term = res.method.objective.term("bn")  # the prior was part of the generator objective
    assert term is not None and not term.prior.attached


def test_bn_prior_on_a_teacher_without_batchnorm_is_a_clear_error(digits_teacher, tmp_path):
    info = dataset_info("digits")
    lenet = create_model("lenet5", num_classes=10, in_channels=1, input_size=32)
    with pytest.raises(DfkdError, match="needs a teacher with BatchNorm layers"):
        distill(lenet, "lenet5-half", "dfad", {"w_bn": 1.0}, info=info, progress=False)
    r = run_cli("distill", "--teacher", str(digits_teacher / "teacher.pt"), "--student", "lenet5-half",
                "--method", "dfad", "--set", "w_bn=1", "--out", str(tmp_path / "run"))
    assert_clear_error(r, "needs a teacher with BatchNorm layers", "w_bn=0")
    assert not (tmp_path / "run" / "config.yaml").exists()
