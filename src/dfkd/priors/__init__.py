"""Generator priors beyond the DAFL terms in ``dfkd.losses``, each an ``nn.Module`` that can be removed."""
from .bn_statistics import BNStatistics, batchnorm_layers

__all__ = ["BNStatistics", "batchnorm_layers"]
