"""Progress of a run: step/total, rate, ETA and the latest scalars.

On a terminal or in a Jupyter notebook it is a tqdm bar (``tqdm.auto``: a widget in notebooks, a redrawn line
on a terminal); in a log file (no TTY) it prints a full line every ``log_every_s`` seconds with no carriage
returns, so CI logs stay short and greppable. ``enabled=False`` (``--quiet``) prints nothing.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any


def format_seconds(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm draws a widget)."""
    shell = sys.modules.get("IPython")
    ip = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    def __init__(self, total: int, desc: str = "", stream: IO[str] | None = None, enabled: bool = True,
                 log_every_s: float = 30.0, initial: int = 0) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.log_every_s = log_every_s
        self._n = self.start_n = initial
        self.start = time.perf_counter()
        self._last_draw = -1e9
        self.postfix: dict[str, Any] = {}
        self._bar = None
        if enabled and (self.tty or (stream is None and in_notebook())):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, file=self.stream, dynamic_ncols=True,
                             mininterval=0.25, unit="it", leave=True)

    @property
    def n(self) -> int:
        return self._n

    @n.setter
    def n(self, value: int) -> None:  # a rollback moves the run back
        self._n = value
        if self._bar is not None:
            self._bar.n = value
            self._bar.refresh()

    def update(self, n: int = 1, **postfix: Any) -> None:
        self._n += n
        self.postfix.update(postfix)
        if self._bar is not None:
            if self.postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in self.postfix.items()}, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self.enabled and now - self._last_draw >= self.log_every_s:
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        elapsed = now - self.start
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        extras = " ".join(f"{k}={_fmt(v)}" for k, v in self.postfix.items())
        eta_s = format_seconds(eta) if eta == eta else "?"
        return (f"{self.desc} {self.n}/{self.total} ({pct:3.0f}%) {format_seconds(elapsed)}<{eta_s} "
                f"{rate:.2f}it/s {extras}").strip()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            if self.postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in self.postfix.items()}, refresh=False)
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self._draw(time.perf_counter())
