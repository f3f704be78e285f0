"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis 2016), pre-activation, as used by CMI and
Fast-DFKD: (d-4)/6 blocks per stage, widths 16, 16k, 32k, 64k. CIFAR-10 parameter counts:
WRN-40-2 2.24M, WRN-16-2 0.69M, WRN-16-1 0.18M. Penultimate features: the 64k pooled channels.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .base import Classifier


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        # The projection shortcut takes the pre-activated input, as in the reference implementation.
        shortcut = x if self.shortcut is None else self.shortcut(o)
        out = self.conv1(o)
        out = F.relu(self.bn2(out))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(Classifier):
    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(PreActBlock(cin, cout, 2 if (j == 0 and stage > 0) else 1, dropout))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)
