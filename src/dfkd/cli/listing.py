"""``dfkd list``: what the registries hold."""
from __future__ import annotations

import argparse

KINDS = ["models", "datasets", "methods", "generators", "terms", "synthesizers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list what a registry holds", description="List registry contents.")
    p.add_argument("what", choices=KINDS, help="which registry")
    p.set_defaults(run=run_list)


def _first_line(obj) -> str:
    doc = (obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def run_list(args: argparse.Namespace) -> int:
    from ..data import list_datasets
    from ..models import count_parameters, create_model, list_models

    if args.what == "models":
        for name in list_models():
            n = count_parameters(create_model(name, num_classes=10, in_channels=3, input_size=32))
            print(f"{name:14s} {n / 1e6:7.3f}M parameters (3x32x32, 10 classes)")
    elif args.what == "datasets":
        print("\n".join(list_datasets()))
    elif args.what == "methods":
        from ..methods import METHODS

        for name in METHODS.names():
            cls = METHODS.get(name)
            print(f"{name:12s} synthesizer={cls.synthesizer:10s} {cls.paper}")
    elif args.what == "generators":
        from ..models.generator import GENERATORS

        for name in GENERATORS.names():
            print(f"{name:12s} {_first_line(GENERATORS.get(name))}")
    elif args.what == "terms":
        from ..terms import TERMS

        for name in TERMS.names():
            print(f"{name:22s} {_first_line(TERMS.get(name))}")
    else:
        from ..synthesizers import SYNTHESIZERS

        for name in SYNTHESIZERS.names():
            print(f"{name:12s} {_first_line(SYNTHESIZERS.get(name))}")
    return 0
