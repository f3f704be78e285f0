"""``dfkd demo``: the short real demonstration that the README's first command runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a short real demo on the bundled digits set (about 5 minutes)",
                       description="Trains a LeNet-5 teacher on scikit-learn's digits, distils it data-free into "
                                   "LeNet-5-half with PRE-DFKD and DFAD, and prints the comparison.")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_device(p)
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from ..bench import get_suite, run_suite

    out = Path(args.out)
    suite = get_suite("digits")
    print("dfkd demo: data-free distillation of a digits classifier (LeNet-5, 61.7k parameters) into "
          "LeNet-5-half (15.7k)\nThe students never see a real image; the real test set only reports accuracy.\n")
    result = run_suite(suite, out, methods=["pre-dfkd", "dfad"], seeds=[0], progress=not args.quiet,
                       device=args.device)
    print("\n" + result["table"] + "\n")
    print("mu = mean test accuracy over the run (what you get stopping at a random time), sigma2 = its variance,")
    print("final = the saved student. Figures:")
    for f in result["figures"]:
        print(f"  {f}")
    print("\nNext:")
    print(f"  dfkd eval {out / 'pre-dfkd-s0' / 'student.pt'} --per-class")
    print("  dfkd bench --suite fashion-mnist            # the README's benchmark table (about 1.5 h on 2 cores)")
    print("  dfkd distill --teacher T.pt --student lenet5-half --method pre-dfkd --eval-dataset D")
    return 0
