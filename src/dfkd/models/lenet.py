"""LeNet-5 and LeNet-5-half as defined for DAFL (Chen et al., ICCV 2019) on 1x32x32 MNIST.

LeNet-5: conv5x5 C->6, ReLU, maxpool2, conv5x5 6->16, ReLU, maxpool2, conv5x5 16->120, ReLU,
FC 120->84, ReLU, FC 84->K: 61,706 parameters at 1x32x32, K=10. LeNet-5-half halves every width
(3/8/60, FC 60->42->K): 15,738 parameters. Penultimate features: the 84 (42) FC activations.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Classifier


class LeNet5(Classifier):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32, width: float = 1.0):
        super().__init__()
        if input_size < 32:
            raise ValueError(f"LeNet-5 needs inputs of at least 32x32, got {input_size}")
        c1, c2, c3, f1 = (max(1, round(v * width)) for v in (6, 16, 120, 84))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, c2, 5, 5)
            nn.Conv2d(c2, c3, 5), nn.ReLU(inplace=True),  # (B, c3, 1, 1) at 32x32
            nn.AdaptiveAvgPool2d(1),  # identity at 32x32; lets larger inputs through without parameters
            nn.Flatten(),
            nn.Linear(c3, f1), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(f1, num_classes)
        self.num_features = f1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)
