"""Research probe (not part of the library): what an iteration of a suite's method costs, per student.

Times ``--iterations`` iterations of ``--method`` at the suite's settings (after ``--warmup`` untimed ones) with
each ``--student``, through ``dfkd.bench.speed.measure_variant`` (the loop ``dfkd bench --speed`` times), and one
forward pass of a batch through the teacher and through each student. Each variant runs alone in this process:
give it the cores you mean to measure (nothing else running).

    python scripts/iteration_cost.py --suite fashion-mnist-bn --method pre-dfkd+ --students lenet5-half,cnn-bn-quarter
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

import dfkd.bench.speed as speed
from dfkd.bench import get_suite
from dfkd.config import parse_set_options
from dfkd.data import dataset_info
from dfkd.models import create_model


def forward_ms(arch: str, info, batch: int, repeats: int = 5) -> float:
    model = create_model(arch, num_classes=info.num_classes, in_channels=info.in_channels,
                         input_size=info.image_size).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, *info.input_shape).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - t0) / repeats * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="fashion-mnist-bn")
    p.add_argument("--method", default="pre-dfkd+")
    p.add_argument("--students", default=None, help="comma-separated (default: the suite's)")
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a distillation setting for every run")
    args = p.parse_args()
    suite = get_suite(args.suite)
    students = args.students.split(",") if args.students else [suite.student_arch]
    info = dataset_info(suite.dataset)
    batch = suite.method_overrides(args.method).get("batch_size", 256)
    print(f"forward of {batch} images, fp32 channels_last, {torch.get_num_threads()} threads: "
          f"teacher {suite.teacher_arch} {forward_ms(suite.teacher_arch, info, batch):.0f} ms; "
          + "; ".join(f"{s} {forward_ms(s, info, batch):.0f} ms" for s in students), flush=True)
    overrides = {**parse_set_options(args.set), "log_every": args.warmup, "eval_every": 10**6}
    for student in students:
        speed.get_suite = lambda name, s=student: dataclasses.replace(get_suite(name), student_arch=s)
        r = speed.measure_variant("dfkd", args.suite, args.method, iterations=args.iterations, warmup=args.warmup,
                                  overrides=overrides)
        print(f"{args.suite} / {args.method} / {student}: {r['seconds_per_iteration']:.2f} s an iteration", flush=True)


if __name__ == "__main__":
    main()
