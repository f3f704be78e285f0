"""``dfkd selftest``: the device self-check (``dfkd.selftest``); ``make gpu-check`` runs it on CUDA."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_device


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selftest", help="check that dfkd computes on a device what it computes on the CPU",
                       description="One-iteration parity of every method against the CPU, every method in the "
                                   "device's precision, CPU<->device resume, a 2-process torchrun run and the speed "
                                   "benchmark's row for the device. Exit status 1 if a check fails.")
    add_device(p)
    p.add_argument("--methods", help="comma-separated methods (default: all)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed benchmark row")
    p.add_argument("--no-torchrun", action="store_true", help="skip the 2-process torchrun check")
    p.add_argument("--json", metavar="FILE", help="also write every check's figures to FILE")
    p.set_defaults(run=run_selftest_cmd)


def run_selftest_cmd(args: argparse.Namespace) -> int:
    from ..selftest import run_selftest

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    result = run_selftest(args.device, methods, speed=not args.no_speed, torchrun=not args.no_torchrun)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["passed"] else 1


__all__ = ["add_parsers"]
