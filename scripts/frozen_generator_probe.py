"""Research probe (not part of the library): how much does one generator state teach?

Loads a finished run's final generator (``state.pt``) and teacher, then trains a fresh student of the run's
architecture for ``--steps`` steps of ``batch_size`` samples drawn from that frozen generator (train mode, as in
the run), with the suites' student recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, cosine to 0,
L_S = mean |S(x) - T(x)|. Prints the student's test accuracy and its argmax agreement with the teacher on the
last batch four times; also prints the run's saved-sample statistics (``dfkd.engine.samples``) for runs that
predate them. fp32, for comparisons between runs, not for speed.

    DFKD_DATA=../shared/data python scripts/frozen_generator_probe.py RUN_DIR TEACHER.pt [--steps 400]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from dfkd.checkpoint import load_model
from dfkd.data import load_dataset
from dfkd.engine.samples import sample_statistics
from dfkd.evaluate import accuracy
from dfkd.models import create_model
from dfkd.models.generator import create_generator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("teacher")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    teacher, info = load_model(args.teacher)[:2]
    teacher.eval()
    state = torch.load(os.path.join(args.run, "state.pt"), map_location="cpu", weights_only=True)
    resolved, cfg = state["resolved"], state["resolved"]["config"]
    samples = torch.load(os.path.join(args.run, "samples.pt"), map_location="cpu", weights_only=True)
    for name, images in samples.items():
        print(name, sample_statistics(teacher, info, images))
    gen = create_generator(cfg["generator"], latent_dim=cfg["latent_dim"], out_shape=info.input_shape,
                           width=cfg["generator_width"], info=info, **cfg["generator_options"])
    gen.load_state_dict(state["method_state"]["modules"]["generator"])
    gen.train()  # as the run draws its batches: BatchNorm on batch statistics
    student = create_model(resolved["student_arch"], num_classes=info.num_classes, in_channels=info.in_channels,
                           input_size=info.image_size)
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    data = load_dataset(info.name, os.environ.get("DFKD_DATA"))
    t0 = time.perf_counter()
    for i in range(args.steps):
        with torch.no_grad():
            x = gen(gen.sample_latent(cfg["batch_size"]))
            t = teacher(x)
        s = student(x)
        loss = (s - t).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (i + 1) % max(1, args.steps // 4) == 0:
            agree = (s.argmax(1) == t.argmax(1)).float().mean().item()
            acc = accuracy(student, data.test_images, data.test_labels, info)["accuracy"]
            print(f"step {i + 1}: loss {loss.item():.3f}, agreement {agree:.2f}, test {acc:.2f} % "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
