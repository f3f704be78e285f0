"""Research probe (not part of the library): how a teacher's labels of images survive small changes.

For 256 real test images and for the images a finished run saved (``samples.pt`` of each RUN_DIR given), prints the
teacher's mean confidence and the fraction of images whose label survives a 5x5 binomial blur, a cyclic shift by
2 pixels along both axes, and a 2x down-and-up sampling (area down, bilinear up). A teacher that reads fine texture
loses labels to the blur and the down-up; one that reads positions loses them to the shift. Samples whose labels
are far less stable than real images' carry their class in cues a student of another architecture may not share.

    DFKD_DATA=../shared/data python scripts/label_stability.py TEACHER.pt [RUN_DIR ...]
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

from dfkd.checkpoint import load_model
from dfkd.data import load_dataset

_K = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
_BLUR = (_K[:, None] * _K[None]) / 256


@torch.no_grad()
def stability(teacher: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Mean confidence and label-survival fractions of normalised images ``x`` (B, C, H, W)."""
    p = teacher(x).softmax(1)
    y = p.argmax(1)
    c = x.shape[1]
    kernel = _BLUR.to(x)[None, None].expand(c, 1, 5, 5)
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=c)
    shifted = torch.roll(x, (2, 2), (2, 3))
    down_up = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="area"), size=x.shape[2:], mode="bilinear")
    same = {name: (teacher(v).argmax(1) == y).float().mean().item()
            for name, v in (("blur", blurred), ("shift2", shifted), ("down_up", down_up))}
    return {"confidence": p.max(1).values.mean().item(), **same}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher")
    p.add_argument("runs", nargs="*")
    args = p.parse_args()
    teacher, info = load_model(args.teacher)[:2]
    teacher.eval()
    data = load_dataset(info.name, os.environ.get("DFKD_DATA"))
    g = torch.Generator().manual_seed(0)
    real = data.test_images[torch.randperm(len(data.test_images), generator=g)[:256]]
    rows = [("real test images (256)", real)]
    for run in args.runs:
        samples = torch.load(os.path.join(run, "samples.pt"), map_location="cpu", weights_only=True)
        rows += [(f"{run} {name} ({len(images)})", images) for name, images in samples.items()]
    for name, images in rows:
        s = stability(teacher, info.normalize(images).float())
        print(f"{name}: confidence {s['confidence']:.2f}, same label after blur {s['blur']:.2f}, "
              f"2-pixel shift {s['shift2']:.2f}, down-up {s['down_up']:.2f}")


if __name__ == "__main__":
    main()
