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


def run_cli(*args: str, env_extra=None, timeout=600, isolated=False) -> subprocess.CompletedProcess:
    """``dfkd ARGS``: its exit status, stdout and stderr.

    By default the command runs in this process through ``dfkd.cli.main`` (what ``python -m dfkd`` calls), with
    stdout, stderr and ``env_extra`` swapped in for the call: the CLI's whole code path without the 3-4 s of
    interpreter and torch start-up a subprocess costs. ``isolated=True`` runs ``python -m dfkd`` in a fresh
    interpreter instead, for what only a new process shows: the entry point itself, settings read at start-up
    (``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS``) and ``timeout``."""
    if isolated:
        return subprocess.run([sys.executable, "-m", "dfkd", *args], capture_output=True, text=True,
                              env={**os.environ, **(env_extra or {})}, timeout=timeout)
    return _run_cli_in_process(list(args), env_extra or {})


def _run_cli_in_process(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    import contextlib
    import io
    import traceback
    from unittest import mock

    from dfkd.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env_extra), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's usage errors and --help, as the process would exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except Exception:  # what the interpreter does with an uncaught exception: traceback, status 1
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(["dfkd", *args], code, out.getvalue(), err.getvalue())


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
