"""``dfkd list``: what the registries hold."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list models, data sets or methods", description="List registry contents.")
    p.add_argument("what", choices=["models", "datasets", "methods"], help="which registry")
    p.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    from ..data import list_datasets
    from ..models import count_parameters, create_model, list_models

    if args.what == "models":
        for name in list_models():
            n = count_parameters(create_model(name, num_classes=10, in_channels=3, input_size=32))
            print(f"{name:14s} {n / 1e6:7.3f}M parameters (3x32x32, 10 classes)")
    elif args.what == "datasets":
        print("\n".join(list_datasets()))
    else:
        try:
            from ..methods import list_methods
        except ImportError:
            list_methods = lambda: []  # noqa: E731  (no methods before the engine exists)
        print("\n".join(list_methods()))
    return 0
