"""Research calibration (not part of the library): what the student learns from the teacher on *real* images
with a data-free run's student budget, the ceiling the synthetic samples are measured against.

Trains a fresh student for ``--steps`` steps of ``--batch`` real training images (no labels used: the targets are
the teacher's logits), with the suites' student recipe by default: SGD lr 0.1, momentum 0.9, weight decay 5e-4,
cosine to 0, L_S = mean |S(x) - T(x)| (``--loss kl --temperature T`` for KL(softmax(T/τ) || softmax(S/τ)) τ²).
``--classes 0,2,...`` keeps only those classes' images (what a student learns of the missing ones from the
teacher's logits alone). fp32, one process; prints the test accuracy (and per class) four times.

    DFKD_DATA=../shared/data python scripts/kd_real.py TEACHER.pt [--student lenet5-half] [--steps 2000]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from dfkd.checkpoint import load_model
from dfkd.data import load_dataset
from dfkd.evaluate import accuracy
from dfkd.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher")
    p.add_argument("--student", default="lenet5-half")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--loss", choices=("l1", "kl"), default="l1")
    p.add_argument("--temperature", type=float, default=1.0)
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
    opt = torch.optim.SGD(student.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, args.steps))
    t0 = time.perf_counter()
    for i in range(args.steps):
        x = info.normalize(images[torch.randint(len(images), (args.batch,))])
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        if args.loss == "l1":
            loss = (s - t).abs().mean()
        else:
            tau = args.temperature
            loss = torch.nn.functional.kl_div((s / tau).log_softmax(1), (t / tau).log_softmax(1), log_target=True,
                                              reduction="batchmean") * tau * tau
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (i + 1) % max(1, args.steps // 4) == 0:
            student.eval()
            with torch.no_grad():
                pred = torch.cat([student(info.normalize(b)).argmax(1) for b in data.test_images.split(1000)])
            student.train()
            acc = (pred == data.test_labels).float().mean().item() * 100
            per_class = " ".join(f"{(pred[data.test_labels == c] == c).float().mean().item() * 100:.0f}"
                                 for c in range(info.num_classes))
            print(f"step {i + 1}: loss {loss.item():.3f}, test {acc:.2f} % (per class {per_class}) "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
