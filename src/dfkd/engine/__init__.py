"""The shared distillation loop and its metrics."""
from .loop import DistillResult, distill
from .robustness import robustness_summary
from .stop import RunInterrupted

__all__ = ["distill", "DistillResult", "robustness_summary", "RunInterrupted"]
