import pytest
import torch
from torch import nn

from dfkd import DfkdError, count_parameters, create_model, list_models
from dfkd.models import logits_and_features

GREY = {"lenet5", "lenet5-half", "cnn-bn"}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_no_nan(name):
    c = 1 if name in GREY else 3
    model = create_model(name, num_classes=7, in_channels=c, input_size=32)
    x = torch.randn(4, c, 32, 32)
    logits, feats = logits_and_features(model, x)
    assert logits.shape == (4, 7)
    assert feats.shape[0] == 4 and feats.dim() == 2
    assert torch.allclose(logits, model(x), atol=1e-5)  # features path == plain forward
    logits.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name,count", [("lenet5", 61_706), ("lenet5-half", 15_738)])
def test_dafl_parameter_counts(name, count):
    assert count_parameters(create_model(name, num_classes=10, in_channels=1)) == count


@pytest.mark.parametrize("name,millions", [("wrn-40-2", 2.24), ("wrn-16-2", 0.69), ("wrn-16-1", 0.18),
                                          ("resnet18", 11.17), ("resnet34", 21.28)])
def test_published_parameter_counts(name, millions):
    n = count_parameters(create_model(name, num_classes=10, in_channels=3))
    assert abs(n / 1e6 - millions) < 0.006


@pytest.mark.parametrize("name", ["resnet18", "wrn-16-1"])
def test_cifar_models_accept_64x64(name):
    model = create_model(name, num_classes=10, in_channels=3, input_size=64)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_unknown_model_lists_valid_names():
    with pytest.raises(DfkdError, match="unknown model 'resnet1000'; valid models: .*lenet5"):
        create_model("resnet1000")


class PlainNet(nn.Module):  # a user's module without forward_features: features come from a hook
    def __init__(self, num_classes=10, in_channels=1, input_size=32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size**2, 16), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def build_plain(**kw):
    return PlainNet(**kw)


def test_import_path_architecture_and_hook_features():
    model = create_model(f"{__name__}:build_plain", num_classes=3, in_channels=1, input_size=8)
    x = torch.randn(5, 1, 8, 8)
    logits, feats = logits_and_features(model, x)
    assert feats.shape == (5, 16)
    assert torch.allclose(feats, model.body(x))
    assert not model.head._forward_hooks  # the hook is removed after use


def test_import_path_errors_are_clear():
    with pytest.raises(DfkdError, match="cannot import module 'no_such_pkg.models'"):
        create_model("no_such_pkg.models:build")
    with pytest.raises(DfkdError, match="has no 'missing'"):
        create_model(f"{__name__}:missing")
