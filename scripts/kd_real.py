"""Research calibration (not part of the library): what the student learns from the teacher on *real* images
with a data-free run's student budget, the ceiling the synthetic samples are measured against.

Trains a fresh student for ``--steps`` steps of ``--batch`` real training images (no labels used: the targets are
the teacher's logits), with the suites' student recipe (``student_recipe.py``; ``--optimizer``, ``--lr``,
``--loss kl --temperature T`` change it).
``--classes 0,2,...`` keeps only those classes' images (what a student learns of the missing ones from the
teacher's logits alone). fp32, one process; prints the test accuracy (and per class) four times.

    DFKD_DATA=../shared/data python scripts/kd_real.py TEACHER.pt [--student lenet5-half] [--steps 2000]
"""
from __future__ import annotations

import argparse
import os

import torch

from dfkd.checkpoint import load_model
from dfkd.data import load_dataset
from dfkd.evaluate import accuracy
from dfkd.models import create_model
from student_recipe import add_recipe_arguments, train_student


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher")
    p.add_argument("--student", default="lenet5-half")
    p.add_argument("--batch", type=int, default=256)
    add_recipe_arguments(p, steps=2000)
    p.add_argument("--classes", help="comma-separated classes whose training images are used (default: all)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    teacher, info = load_model(args.teacher)[:2]
    teacher.eval()
    data = load_dataset(info.name, os.environ.get("DFKD_DATA"))
    images, labels = data.train_images, data.train_labels
    if args.classes:
        keep = torch.isin(labels, torch.tensor([int(c) for c in args.classes.split(",")]))
        images, labels = images[keep], labels[keep]
    print(f"teacher test accuracy {accuracy(teacher, data.test_images, data.test_labels, info)['accuracy']:.2f} %; "
          f"{len(images)} training images")
    student = create_model(args.student, num_classes=info.num_classes, in_channels=info.in_channels,
                           input_size=info.image_size)

    def draw():
        x = info.normalize(images[torch.randint(len(images), (args.batch,))])
        with torch.no_grad():
            return x, teacher(x)

    def report(step, loss, s, t, seconds):
        acc = accuracy(student, data.test_images, data.test_labels, info, per_class=True)
        per_class = " ".join(f"{v:.0f}" for v in acc["per_class"].values())
        print(f"step {step}: loss {loss:.3f}, test {acc['accuracy']:.2f} % (per class {per_class}) ({seconds:.0f} s)",
              flush=True)

    train_student(student, draw, args, report)


if __name__ == "__main__":
    main()
