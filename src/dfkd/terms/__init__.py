"""Objective terms, one registry (``TERMS``); each term registers itself in its own file."""
from .base import TERMS, Objective, Passes, Term, register_term, term_settings
from . import adversarial, bn_statistics, contrastive, image_priors, teacher_priors  # noqa: F401  (registration)
from .bn_statistics import BNStatistics, batchnorm_layers


def list_terms() -> list[str]:
    return TERMS.names()


__all__ = ["TERMS", "Objective", "Passes", "Term", "register_term", "term_settings",
           "BNStatistics", "batchnorm_layers", "list_terms"]
