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
    """A quickly trained digits teacher (lenet5-half, 6 epochs, seed 0: 90.5 % test accuracy), made by the CLI.

    3 epochs were too few: depending on the seed they gave 29-91 %, and a weak teacher makes every generator
    "collapse" onto its one favourite class."""
    out = tmp_path_factory.mktemp("teacher")
    r = run_cli("train-teacher", "--dataset", "digits", "--arch", "lenet5-half", "--epochs", "6", "--out", str(out),
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    return out


# Tiny settings for the methods that synthesise in rounds into a pool (ADI, CMI, Fast): a round of 2 steps instead
# of hundreds, a small pool and contrastive memory, and one synthesis-only round (Fast).
TINY_ROUNDS = {"pool_size": 64, "contrastive_negatives": 16, "contrastive_bank_size": 64, "synthesis_warmup": 1}


def tiny_method_config(name: str, base: dict) -> dict:
    """``base`` restricted to the keys method ``name`` has, plus tiny synthesis rounds where it has them."""
    from dfkd.methods import get_method

    cls = get_method(name).Config
    fields = cls.__dataclass_fields__
    cfg = {k: v for k, v in base.items() if k in fields}
    if cls().generator_steps > 1 and "generator_steps" not in base:
        cfg["generator_steps"] = 2
    cfg.update({k: v for k, v in TINY_ROUNDS.items() if k in fields and k not in base})
    return cfg


def needs_bn_teacher(name: str) -> bool:
    """Methods whose default objective matches BatchNorm statistics need a teacher with BatchNorm layers."""
    from dfkd.methods import get_method

    return get_method(name).Config().w_bn > 0


def tiny_teacher(name: str, in_channels: int = 1, num_classes: int = 10):
    """A tiny random teacher that method ``name`` can distil (with BatchNorm where it needs it)."""
    from dfkd import create_model

    kw = {"num_classes": num_classes, "in_channels": in_channels, "input_size": 32}
    return create_model("cnn-bn", width=4, **kw) if needs_bn_teacher(name) else create_model("lenet5-half", **kw)
