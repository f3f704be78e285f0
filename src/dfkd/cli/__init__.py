"""The ``dfkd`` console command: subcommands over the library (each lives in its own module).

Every user-facing problem is a ``DfkdError``: printed as one line ``dfkd: error: ...``, exit status 2
(128 + N for a run that stopped cleanly on signal N).
"""
from __future__ import annotations

import argparse
import sys

from ..errors import DfkdError
from . import bench_cmd, demo, distill_cmd, export_cmd, listing, plot_cmd, selftest_cmd, teacher_cmds

# Each module contributes subcommands via add_parsers(subparsers); handlers are set with set_defaults(run=...).
COMMAND_MODULES = [teacher_cmds, distill_cmd, export_cmd, plot_cmd, bench_cmd, listing, demo, selftest_cmd]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="dfkd",
        description="Data-free knowledge distillation: compress a trained classifier without its training data.",
        epilog="Run 'dfkd <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"dfkd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except DfkdError as exc:
        print(f"dfkd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dfkd: interrupted", file=sys.stderr)
        return 130
