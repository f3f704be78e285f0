"""Distillation methods: one registry; each method is a small class in its own file."""
from __future__ import annotations

from ..registry import Registry
from .base import Method
from .distill_config import DistillConfig
from .dafl import DAFL
from .dfad import DFAD
from .mb_dfkd import MBDFKD
from .noise import NoiseBaseline
from .pre_dfkd import PREDFKD
from .pre_dfkd_plus import PREDFKDPlus

METHODS: Registry[type[Method]] = Registry("method")

for _cls in (DAFL, DFAD, MBDFKD, NoiseBaseline, PREDFKD, PREDFKDPlus):
    METHODS.register(_cls.name)(_cls)


def get_method(name: str) -> type[Method]:
    return METHODS.get(name)


def list_methods() -> list[str]:
    return METHODS.names()


__all__ = ["METHODS", "Method", "DistillConfig", "get_method", "list_methods"]
