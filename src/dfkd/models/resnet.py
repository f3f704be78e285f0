"""CIFAR-style ResNets (He et al. 2016) as used by DAFL/DFAD/PRE-DFKD: 3x3 stem with stride 1 and no
max-pool, four stages of widths 64-128-256-512, adaptive average pooling (so 64x64 inputs also work).
ResNet-18: BasicBlock x [2, 2, 2, 2] (11.2M parameters, CIFAR-10); ResNet-34: [3, 4, 6, 3] (21.3M).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .base import Classifier


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(Classifier):
    def __init__(self, blocks: tuple[int, ...], num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                 width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)  # (B, 512)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)
