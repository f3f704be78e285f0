"""What a model needs to know about the data it was trained on; travels inside every checkpoint."""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@functools.lru_cache(maxsize=64)
def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...], dtype: torch.dtype,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, 1, 1) mean and std tensors, made once per dtype and device (a GPU normaliser never copies them
    from the host again). Made outside inference mode, so autograd may save them whoever asked first."""
    with torch.inference_mode(False):
        return (torch.tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1),
                torch.tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1))


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of the model input
    mean: tuple[float, ...]  # per channel, applied to pixels scaled to [0, 1]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Normalise containers so that an info rebuilt from JSON/YAML compares equal to the original.
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        names = tuple(str(v) for v in self.class_names) or tuple(str(i) for i in range(self.num_classes))
        object.__setattr__(self, "class_names", names)
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {self.input_shape}")
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean/std need {channels} values, got {self.mean} / {self.std}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def image_size(self) -> int:
        return self.input_shape[1]

    def to_dict(self) -> dict[str, Any]:
        # Plain lists/str/int/float only, so torch.load(weights_only=True) accepts it.
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetInfo":
        return cls(**{k: d[k] for k in ("name", "num_classes", "input_shape", "mean", "std", "class_names") if k in d})

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) in [0, 255] -> float32 in the model's normalised input space."""
        x = images.to(torch.float32).div_(255.0)
        mean, std = _channel_stats(tuple(self.mean), tuple(self.std), x.dtype, x.device)
        return x.sub_(mean).div_(std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float images -> [0, 1] floats (for plots of synthetic samples)."""
        mean, std = _channel_stats(tuple(self.mean), tuple(self.std), x.dtype, x.device)
        return (x * std + mean).clamp(0.0, 1.0)
