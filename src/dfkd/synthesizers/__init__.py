"""Synthesizers, one registry (``SYNTHESIZERS``); each registers itself in its own file."""
from .base import SYNTHESIZERS, Synthesizer, register_synthesizer, top_class_fraction
from . import generator, noise, pixels  # noqa: F401  (registration)
from .generator import GeneratorSynthesizer
from .pixels import PixelSettings, PixelSynthesizer
from .pool import PoolSettings, SyntheticPool


def list_synthesizers() -> list[str]:
    return SYNTHESIZERS.names()


__all__ = ["SYNTHESIZERS", "Synthesizer", "GeneratorSynthesizer", "PixelSettings", "PixelSynthesizer", "PoolSettings",
           "SyntheticPool", "register_synthesizer", "top_class_fraction",
           "list_synthesizers"]
