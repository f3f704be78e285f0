"""``dfkd plot``: figures from finished (or running) distillation runs."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="accuracy curves and sample grids of distillation runs",
                       description="Writes accuracy.png (runs of one method as mean line + min-max band over "
                                   "seeds; runs whose settings differ, say one with --set w_info_entropy=5, are "
                                   "separate curves labelled with what differs), accuracy-time.png (the same "
                                   "against wall-clock seconds) and samples-<run>.png (novel and replayed "
                                   "synthetic samples).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="distillation output directories")
    p.add_argument("--out", default=None, help="where to write the PNGs (default: the first run directory)")
    p.add_argument("--title", default="", help="title of the accuracy figure")
    p.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from ..plots import plot_runs

    for path in plot_runs(args.runs, args.out or args.runs[0], args.title):
        print(path)
    return 0
