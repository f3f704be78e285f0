import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REAL_DATA = Path(os.environ["DFKD_DATA"]) if os.environ.get("DFKD_DATA") else None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Decoded-array cache shared by the whole session (so real data sets decode once), never ~/.cache.
    monkeypatch.setenv("DFKD_CACHE", str(tmp_path_factory.getbasetemp() / "dfkd-cache"))
    torch.manual_seed(0)


def real_data_path(name: str) -> Path:
    """Path to a real data set under $DFKD_DATA; skips (with the reason) where the machine has none."""
    if REAL_DATA is None or not (REAL_DATA / name).exists():
        pytest.skip(f"real data '{name}' not present (set DFKD_DATA to the shared data folder to run this)")
    return REAL_DATA / name


def run_cli(*args: str, cwd=None, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "dfkd", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def assert_clear_error(result, *fragments, code=2):
    """One line ``dfkd: error: ...`` on stderr containing every fragment, and the expected exit status."""
    assert result.returncode == code, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("dfkd: error: "), result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory):
    """A quickly trained digits teacher (lenet5-half, 3 epochs: about 90 % test accuracy), made by the CLI."""
    out = tmp_path_factory.mktemp("teacher")
    r = run_cli("train-teacher", "--dataset", "digits", "--arch", "lenet5-half", "--epochs", "3", "--out", str(out),
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    return out
