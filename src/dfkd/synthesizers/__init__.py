"""Synthesizers, one registry (``SYNTHESIZERS``); each registers itself in its own file."""
from .base import SYNTHESIZERS, Synthesizer, register_synthesizer, top_class_fraction
from . import generator, noise  # noqa: F401  (registration)
from .generator import GeneratorSynthesizer


def list_synthesizers() -> list[str]:
    return SYNTHESIZERS.names()


__all__ = ["SYNTHESIZERS", "Synthesizer", "GeneratorSynthesizer", "register_synthesizer", "top_class_fraction",
           "list_synthesizers"]
