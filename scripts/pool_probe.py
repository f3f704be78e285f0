"""Research probe (not part of the library): what a student learns from a finished pool run's samples.

Loads the pool (images and the teacher's logits as stored) of a finished ADI / CMI / Fast run (``state.pt``) and
trains a fresh student on it with the suites' student recipe (``student_recipe.py``): each step draws
``--batch-size`` pool images, optionally augments them (``--augment``: random 2-pixel shifts by padding and
cropping, as the pool methods' student views), labels them with the teacher's logits (recomputed on the
augmented view; the stored logits without ``--augment``) and takes one student step. Prints the student's test
accuracy, its agreement with the teacher on the pool and on the test set. Separates what the samples can teach
from what the method's schedule makes of them, and lets the student architecture vary (``--student``,
``--student-width`` for ``cnn-bn``).

    DFKD_DATA=../shared/data python scripts/pool_probe.py RUN_DIR TEACHER.pt [--steps 2000] [--student lenet5-half]
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

from dfkd.checkpoint import load_model
from dfkd.data import load_dataset
from dfkd.evaluate import accuracy, predict
from dfkd.models import create_model
from student_recipe import add_recipe_arguments, train_student


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("teacher")
    add_recipe_arguments(p, steps=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--student", default="lenet5-half")
    p.add_argument("--student-width", type=int, help="width of a cnn-bn student")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--limit", type=int, help="use only the first N pool images")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    teacher, info = load_model(args.teacher)[:2]
    teacher.eval()
    state = torch.load(os.path.join(args.run, "state.pt"), map_location="cpu", weights_only=True)
    pool = state["method_state"]["modules"]["pool"]
    n = int(min(pool["added"], pool["images"].shape[0]))
    if args.limit:
        n = min(n, args.limit)
    images, logits = pool["images"][:n], pool["logits"][:n]
    print(f"pool: {n} images")
    kw = {"width": args.student_width} if args.student_width else {}
    student = create_model(args.student, num_classes=info.num_classes, in_channels=info.in_channels,
                           input_size=info.image_size, **kw)
    data = load_dataset(info.name, os.environ.get("DFKD_DATA"))

    def draw():
        idx = torch.randint(0, n, (args.batch_size,))
        x = info.normalize(images[idx]).float()
        if not args.augment:
            return x, logits[idx]
        pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
        dx, dy = torch.randint(0, 5, (2,)).tolist()
        x = pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
        with torch.no_grad():
            return x, teacher(x)

    def report(step, loss, s, t, seconds):
        acc = accuracy(student, data.test_images, data.test_labels, info)["accuracy"]  # restores train mode
        agree = (s.argmax(1) == t.argmax(1)).float().mean().item()
        print(f"step {step}: loss {loss:.4f} test {acc:.2f} agreement(batch) {agree:.2f} {seconds:.0f} s", flush=True)

    student.train()
    train_student(student, draw, args, report)
    ts = predict(teacher, data.test_images, info)
    ss = predict(student, data.test_images, info)
    print(f"agreement with the teacher on the test set: {(ts == ss).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
