"""Model zoo: one registry; ``create_model(name, num_classes=, in_channels=, input_size=)``.

A name of the form ``package.module:function`` imports a user's own builder, called with the same
keyword arguments, so user architectures travel through checkpoints exactly like zoo ones.
"""
from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from ..errors import DfkdError
from ..registry import Registry
from .base import Classifier, count_parameters, logits_and_features
from .lenet import LeNet5
from .resnet import CifarResNet
from .simple_cnn import BNCNN
from .wrn import WideResNet

__all__ = ["MODELS", "create_model", "list_models", "Classifier", "count_parameters", "logits_and_features"]

MODELS: Registry[nn.Module] = Registry("model")


@MODELS.register("lenet5")
def lenet5(**kw: Any) -> nn.Module:
    return LeNet5(width=1.0, **kw)


@MODELS.register("lenet5-half")
def lenet5_half(**kw: Any) -> nn.Module:
    return LeNet5(width=0.5, **kw)


@MODELS.register("cnn-bn")
def cnn_bn(**kw: Any) -> nn.Module:
    return BNCNN(**kw)


@MODELS.register("cnn-bn-quarter")
def cnn_bn_quarter(**kw: Any) -> nn.Module:
    """cnn-bn at a quarter of its width (8/16/32 channels): a student of the cnn-bn teacher's family."""
    return BNCNN(width=8, **kw)


@MODELS.register("resnet18")
def resnet18(**kw: Any) -> nn.Module:
    return CifarResNet((2, 2, 2, 2), **kw)


@MODELS.register("resnet34")
def resnet34(**kw: Any) -> nn.Module:
    return CifarResNet((3, 4, 6, 3), **kw)


def _wrn(depth: int, widen: int):
    def build(**kw: Any) -> nn.Module:
        return WideResNet(depth, widen, **kw)

    return build


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    MODELS.register(f"wrn-{_d}-{_k}")(_wrn(_d, _k))


def _import_builder(path: str):
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DfkdError(f"cannot import module '{module_name}' for architecture '{path}': {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise DfkdError(f"module '{module_name}' has no '{attr}' (architecture '{path}')") from None


def create_model(name: str, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                 **kwargs: Any) -> nn.Module:
    """Build a zoo model by name, or a user model from ``module:function``."""
    builder = _import_builder(name) if ":" in name else MODELS.get(name)
    try:
        model = builder(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **kwargs)
    except (TypeError, ValueError) as exc:
        raise DfkdError(f"cannot build architecture '{name}': {exc}") from None
    if not isinstance(model, nn.Module):
        raise DfkdError(f"architecture '{name}' returned {type(model).__name__}, not an nn.Module")
    return model


def list_models() -> list[str]:
    return MODELS.names()
