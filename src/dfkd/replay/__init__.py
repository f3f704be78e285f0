"""Replay memories: the PRE-DFKD VAE (generative, nothing stored) and the MB-DFKD ring buffer."""
from .memory_bank import MemoryBank
from .vae import ReplayVAE, vae_loss

__all__ = ["ReplayVAE", "vae_loss", "MemoryBank"]
