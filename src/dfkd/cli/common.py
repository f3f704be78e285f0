"""Argument helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..data.info import DatasetInfo
from ..errors import DfkdError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if v < 0 or v != v:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text}")
    return v


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (CUDA, else Apple MPS, else CPU; under torchrun each rank's own GPU), cpu, cuda, "
                        "cuda:N or mps (default auto)")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", help="where the data set files are (default: search $DFKD_DATA, "
                   "/usr/share/datasets, ~/.cache/dfkd; download if missing)")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the data is not found")


def prepare_out_dir(out: str | os.PathLike, marker: str, overwrite: bool, resumable: bool = False) -> Path:
    """Create ``out`` (refusing to clobber an existing ``marker`` file unless ``overwrite``) and check it is writable."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise DfkdError(f"output path '{path}' exists and is not a directory")
    if (path / marker).exists() and not overwrite:
        also = "--resume to continue it, " if resumable else ""
        raise DfkdError(f"'{path}' already holds a run ({marker}); use {also}--overwrite to replace it or choose "
                        "another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".dfkd-write-test-{os.getpid()}"  # one per process: torchrun ranks probe concurrently
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DfkdError(f"output directory '{path}' is not writable ({exc.strerror or exc})") from None
    return path


def check_compatible(ckpt_info: DatasetInfo, data_info: DatasetInfo, what: str) -> None:
    if ckpt_info.num_classes != data_info.num_classes:
        raise DfkdError(f"{what} predicts {ckpt_info.num_classes} classes but data set '{data_info.name}' has "
                        f"{data_info.num_classes}")
    if ckpt_info.input_shape != data_info.input_shape:
        raise DfkdError(f"{what} takes inputs {ckpt_info.input_shape} but data set '{data_info.name}' has "
                        f"{data_info.input_shape}")
