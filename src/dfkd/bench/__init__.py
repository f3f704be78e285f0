"""Named benchmark suites a user can rerun with one command (``dfkd bench``)."""
from .runner import run_suite
from .suites import SUITES, Suite, get_suite

__all__ = ["SUITES", "Suite", "get_suite", "run_suite"]
