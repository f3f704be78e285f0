"""A small BatchNorm CNN for MNIST-like data (a strong teacher with BN statistics, ~0.29M parameters).

Three stages of two conv3x3-BN-ReLU blocks (32, 64, 128 channels) with max-pooling in between,
global average pooling and a linear head. Penultimate features: the 128 pooled channels.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Classifier


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class BNCNN(Classifier):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32, width: int = 32):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.body = nn.Sequential(
            *_block(in_channels, w1), *_block(w1, w1), nn.MaxPool2d(2),  # (B, w1, H/2, W/2)
            *_block(w1, w2), *_block(w2, w2), nn.MaxPool2d(2),  # (B, w2, H/4, W/4)
            *_block(w2, w3), *_block(w3, w3),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, w3)
        )
        self.fc = nn.Linear(w3, num_classes)
        self.num_features = w3

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)
