"""SVHN (Street View House Numbers, cropped digits): the official ``train_32x32.mat`` and ``test_32x32.mat``.

Each file is a MATLAB v5 file with ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) labels 1..10, where 10
stands for the digit 0; we map 10 -> 0 so that class k is the digit k (as torchvision does). The
``extra`` split (531,131 images, 1.3 GB) is not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DfkdError
from .info import DatasetInfo
from .locate import RemoteFile

SVHN_REMOTE = (
    RemoteFile("train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
               "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
    RemoteFile("test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
               "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
)
# Per-channel statistics of the 73,257 training images.
SVHN_INFO = DatasetInfo("svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                        tuple(str(d) for d in range(10)))


def svhn_source_in(d: Path) -> Path | None:
    """``d`` if it holds both official files."""
    return d if all((d / rf.filename).is_file() for rf in SVHN_REMOTE) else None


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat  # scipy comes with scikit-learn; imported here to keep `import dfkd` light

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as exc:  # scipy raises several types for files that are not MATLAB v5
        raise DfkdError(f"{path} is not an SVHN .mat file ({exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DfkdError(f"{path} has no 'X' and 'y' arrays: not an SVHN .mat file")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise DfkdError(f"{path}: X has shape {x.shape} for {y.shape[0]} labels, expected (32, 32, 3, N)")
    if y.size and not ((y >= 1) & (y <= 10)).all():
        raise DfkdError(f"{path}: labels must be 1..10 (10 = digit 0), found {int(y.min())}..{int(y.max())}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8)  # (N, 3, 32, 32)
    return images, np.where(y == 10, 0, y)


def decode_svhn(source: Path) -> dict[str, np.ndarray]:
    x_train, y_train = _read_split(source / SVHN_REMOTE[0].filename)
    x_test, y_test = _read_split(source / SVHN_REMOTE[1].filename)
    return {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test,
            "class_names": np.asarray(SVHN_INFO.class_names)}
