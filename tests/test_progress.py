"""Progress output: a tqdm bar on a terminal, plain lines (no carriage returns) in a log file, nothing when quiet."""
import io

from dfkd.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_plain_lines_every_few_seconds(monkeypatch):
    clock = iter(range(0, 1000, 7))  # 7 s per update
    monkeypatch.setattr("dfkd.progress.time.perf_counter", lambda: float(next(clock)))
    out = io.StringIO()
    bar = Progress(10, desc="dfad", stream=out, log_every_s=30.0)
    for i in range(10):
        bar.update(1, s_loss=0.5 / (i + 1))
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 4 and lines[-1].startswith("dfad 10/10 (100%)") and "s_loss=0.05" in lines[-1]


def test_a_terminal_gets_a_tqdm_bar_that_follows_rollbacks_and_postfix():
    out = FakeTTY()
    bar = Progress(20, desc="pre-dfkd", stream=out, initial=5)
    bar.update(3)
    bar.postfix["acc"] = 81.5  # the loop sets scalars directly
    bar.n = 6  # a rollback moves the run back
    bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" in text and "pre-dfkd" in text and "7/20" in text and "acc=81.5" in text


def test_quiet_prints_nothing():
    out = FakeTTY()
    bar = Progress(5, stream=out, enabled=False)
    bar.update(5, loss=1.0)
    bar.close()
    assert out.getvalue() == ""
