"""Clean stops: SIGINT/SIGTERM ask the loop to finish the current iteration, checkpoint and exit.

A second Ctrl-C aborts at once (``KeyboardInterrupt``); the last checkpoint on disk is still intact, because
checkpoints are only ever replaced atomically.
"""
from __future__ import annotations

import signal
import sys
import threading

from ..errors import DfkdError


class RunInterrupted(DfkdError):
    """The run stopped on a signal after writing a checkpoint; the exit status is 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into a stop request (``.requested``, ``.signum``).

    Only the main thread can install signal handlers; elsewhere (or when ``enabled`` is False) the default
    behaviour is left alone and ``requested`` stays False.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        self.signum = signum
        print(f"\ndfkd: {signal.Signals(signum).name} received: stopping after the current iteration "
              "(Ctrl-C again aborts at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if self.enabled:
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


__all__ = ["StopSignals", "RunInterrupted"]
