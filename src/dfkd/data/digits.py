"""scikit-learn's bundled 8x8 handwritten digits (1,797 images; no download).

Split: a fixed stratified 80/20 split (seeded permutation within each class), 1,438 train / 359 test.
Images: the 0..16 intensities are scaled to 0..255 and bilinearly upsampled 8x8 -> 32x32, so every model
in the zoo (LeNet-5 needs 32x32) accepts them. Small enough for end-to-end tests in seconds.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import ImageDataset
from .info import DatasetInfo

DIGITS_SIZE = 32
# Computed on the training split after upsampling (see tests/test_data.py::test_digits_stats).
DIGITS_INFO = DatasetInfo("digits", 10, (1, DIGITS_SIZE, DIGITS_SIZE), (0.3055,), (0.3237,),
                          tuple(str(i) for i in range(10)))


def stratified_split(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits_dataset() -> ImageDataset:
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))[:, None]  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = images.round_().clamp_(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    tr, te = stratified_split(bunch.target)
    tr, te = torch.from_numpy(tr), torch.from_numpy(te)
    return ImageDataset(images[tr], labels[tr], images[te], labels[te], DIGITS_INFO)
