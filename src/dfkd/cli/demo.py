"""``dfkd demo``: the short real demonstration that the README's first command runs."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a short real demo on the bundled digits set",
                       description="Train a digits teacher and evaluate it (a few minutes on 2 CPU cores).")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..evaluate import accuracy
    from ..models import count_parameters, create_model
    from ..teacher import recipe, train_teacher

    out = Path(args.out)
    data = load_dataset("digits")
    info = data.info
    kwargs = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
    teacher = create_model("lenet5", **kwargs)
    print(f"[1/2] training a LeNet-5 teacher ({count_parameters(teacher):,} parameters) on digits ...")
    train_teacher(teacher, data, recipe("digits"), arch="lenet5", arch_kwargs=kwargs, out_dir=out / "teacher")
    acc = accuracy(teacher, data.test_images, data.test_labels, info)["accuracy"]
    print(f"[2/2] teacher test accuracy: {acc:.2f}%  ->  {out / 'teacher' / 'teacher.pt'}")
    print(f"next: dfkd eval {out / 'teacher' / 'teacher.pt'} --per-class")
    return 0
