"""Distillation methods: one registry (``METHODS``); each method registers itself in its own file, so adding a
method is one new file and one import line here."""
from __future__ import annotations

from .base import METHODS, Method, register_method
from .distill_config import DistillConfig
from . import adi, cmi, dafl, dfad, fast, mb_dfkd, noise, pre_dfkd, pre_dfkd_plus  # noqa: F401  (registration)


def get_method(name: str) -> type[Method]:
    return METHODS.get(name)


def list_methods() -> list[str]:
    return METHODS.names()


__all__ = ["METHODS", "Method", "DistillConfig", "get_method", "list_methods", "register_method"]
