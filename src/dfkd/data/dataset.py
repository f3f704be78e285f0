"""A loaded data set: uint8 image tensors at the model's input size, int64 labels, and its info."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from .info import DatasetInfo


@dataclass
class ImageDataset:
    train_images: torch.Tensor  # (N, C, H, W) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    info: DatasetInfo

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{split} images must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if tuple(x.shape[1:]) != self.info.input_shape:
                raise ValueError(f"{split} images are {tuple(x.shape[1:])}, info says {self.info.input_shape}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"{split}: {x.shape[0]} images but labels of shape {tuple(y.shape)}")


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, labels) batches from in-memory tensors; the caller normalises/augments.

    The whole data sets used here fit in memory as uint8 (CIFAR-10 train is 150 MB), and slicing
    tensors is far faster on CPU than a per-sample DataLoader.
    """
    n = images.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield images[start : start + batch_size], labels[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield images[idx], labels[idx]
