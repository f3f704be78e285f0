"""The sample diagnostics saved with every run: the teacher's class balance and confidence, the pixel range."""
import math

import torch
import torch.nn as nn

from dfkd.data import dataset_info
from dfkd.engine.samples import sample_statistics
from dfkd.plots import describe_statistics


class BrightnessTeacher(nn.Module):
    """Calls an image class k when its mean pixel (in [0, 1]) falls in [k/10, (k+1)/10); confidence set by
    the logit gap."""

    def __init__(self, info, gap: float):
        super().__init__()
        self.info, self.gap = info, gap
        self.anchor = nn.Parameter(torch.zeros(1))  # a parameter, so the module has a device

    def forward(self, x):
        pixels = self.info.denormalize(x).mean((1, 2, 3))
        k = (pixels * 10).clamp(max=9.999).floor().long()
        return nn.functional.one_hot(k, 10).float() * self.gap + self.anchor


def images_of_brightness(levels):
    return torch.stack([torch.full((1, 32, 32), v, dtype=torch.uint8) for v in levels])


def test_balanced_samples_have_full_class_entropy():
    info = dataset_info("fashion-mnist")
    levels = [int(255 * (k + 0.5) / 10) for k in range(10) for _ in range(3)]  # 3 images of each class
    s = sample_statistics(BrightnessTeacher(info, gap=100.0), info, images_of_brightness(levels))
    assert s["n"] == 30 and s["teacher_class_counts"] == [3] * 10
    assert s["class_entropy"] == 1.0 and s["top_class_frac"] == 0.1
    assert s["teacher_confidence"] > 0.999
    assert s["pixel_min"] == round(levels[0] / 255, 4) and s["pixel_max"] == round(levels[-1] / 255, 4)
    assert s["saturated_frac"] == 0.0


def test_one_class_saturated_samples():
    info = dataset_info("fashion-mnist")
    s = sample_statistics(BrightnessTeacher(info, gap=0.0), info, images_of_brightness([0] * 8))
    assert s["teacher_class_counts"] == [8] + [0] * 9
    assert s["class_entropy"] == 0.0 and s["top_class_frac"] == 1.0
    assert math.isclose(s["teacher_confidence"], 0.1, abs_tol=1e-4)  # equal logits: uniform softmax
    assert s["pixel_mean"] == 0.0 and s["saturated_frac"] == 1.0
    caption = describe_statistics(s)
    assert "1/10 classes" in caption and "top 100%" in caption and "100% at 0 or 1" in caption


def test_no_samples():
    info = dataset_info("fashion-mnist")
    empty = torch.zeros(0, 1, 32, 32, dtype=torch.uint8)
    assert sample_statistics(BrightnessTeacher(info, 1.0), info, empty) == {"n": 0}
    assert describe_statistics({"n": 0}) == "no samples"
