"""``dfkd bench``: run a named benchmark suite (teacher, every method x seed, table, figures), or with
``--speed`` time dfkd's loop against a bare PyTorch loop on the suite's settings."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..errors import DfkdError
from .common import add_device, positive_int


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds needs comma-separated integers, got '{text}'") from None


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..bench import SUITES

    p = sub.add_parser("bench", help="run a benchmark suite and write its table and figures",
                       description="Trains (or reuses) the suite's teacher, distils with each method and seed, and "
                                   "writes results.json, table.md and the figures. Finished runs are skipped.")
    p.add_argument("--suite", help=f"one of: {', '.join(SUITES.names())} (--speed: default fashion-mnist)")
    p.add_argument("--speed", action="store_true",
                   help="time seconds per iteration of dfkd vs a bare PyTorch loop (fp32, and dfkd's settings), "
                        "with peak memory; --iterations sets the timed iterations (default 30)")
    p.add_argument("--method", default="pre-dfkd", help="--speed: the method to time (pre-dfkd or dfad)")
    p.add_argument("--compile", action="store_true",
                   help="--speed: also time the bare loop (dfkd's settings) under torch.compile")
    p.add_argument("--warmup", type=positive_int, default=10, help="--speed: untimed iterations first (default 10)")
    p.add_argument("--methods", type=_csv, help="comma-separated methods (default: the suite's)")
    p.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default: the suite's)")
    p.add_argument("--student", metavar="ARCH",
                   help="student architecture instead of the suite's (a zoo name or package.module:function)")
    p.add_argument("--iterations", type=positive_int, help="override the suite's budget (for a quick look)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a distillation config key for every method (e.g. batch_size=64)")
    p.add_argument("--out", help="suite directory (default: runs/bench-<suite>)")
    p.add_argument("--force", action="store_true", help="redo finished runs")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--data-dir", metavar="DIR", help="where the data set files are")
    add_device(p)
    p.set_defaults(run=run_bench)


def run_speed(args: argparse.Namespace) -> int:
    from ..bench.speed import format_speed, run_speed_benchmark
    from ..config import parse_set_options

    log = (lambda msg: print(msg, file=sys.stderr)) if (args.json or args.quiet) else print
    result = run_speed_benchmark(args.suite or "fashion-mnist", args.method, iterations=args.iterations or 30,
                                 warmup=args.warmup, overrides=parse_set_options(args.set), log=log,
                                 compile=args.compile, device=args.device)
    print(json.dumps(result) if args.json else format_speed(result))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from ..bench import get_suite, run_suite

    if args.speed:
        return run_speed(args)
    if not args.suite:
        raise DfkdError("--suite is required (or --speed)")
    suite = get_suite(args.suite)
    if args.student:
        suite = dataclasses.replace(suite, student_arch=args.student)
    if args.seeds is not None and not args.seeds:
        raise DfkdError("--seeds is empty")
    # Progress and log lines go to stderr when stdout carries JSON.
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    from ..config import parse_set_options

    result = run_suite(suite, args.out or f"runs/bench-{suite.name}", methods=args.methods, seeds=args.seeds,
                       iterations=args.iterations, force=args.force, progress=not args.quiet,
                       data_dir=args.data_dir, log=log, overrides=parse_set_options(args.set), device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        print()
        print(result["table"])
        print()
        for f in result["figures"]:
            print(f"figure: {f}")
    return 0
