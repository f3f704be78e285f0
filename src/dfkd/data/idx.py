"""MNIST and Fashion-MNIST from the official gzipped IDX files, zero-padded from 28x28 to 32x32.

The LeNet-5 family (DAFL) expects 32x32 inputs; padding (rather than resizing) keeps pixels exact.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import DfkdError
from .cache import cached_arrays
from .dataset import ImageDataset
from .info import DatasetInfo
from .locate import RemoteFile, download, cache_root, find_source, not_found

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

MNIST_REMOTE = tuple(
    RemoteFile(f"{stem}.gz", f"https://ossci-datasets.s3.amazonaws.com/mnist/{stem}.gz", sha)
    for stem, sha in [
        ("train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ]
)
FASHION_REMOTE = tuple(
    RemoteFile(f"{stem}.gz", f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{stem}.gz", sha)
    for stem, sha in [
        ("train-images-idx3-ubyte", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        ("train-labels-idx1-ubyte", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
        ("t10k-images-idx3-ubyte", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        ("t10k-labels-idx1-ubyte", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
    ]
)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


PAD = 2  # 28 x 28 -> 32 x 32: a black frame of 2 pixels around every MNIST-like image


def zero_border(dataset_name: str) -> int:
    """The width of the black frame the loader puts around every image of a data set (MNIST-like: ``PAD``)."""
    return PAD if dataset_name in ("mnist", "fashion-mnist") else 0


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic 0x00 0x00 <type 0x08=uint8> <ndim>, big-endian dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DfkdError(f"cannot read IDX file {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DfkdError(f"{path} is not a uint8 IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise DfkdError(f"{path} is truncated: header says {dims}, found {payload.size} bytes of data")
    return payload.reshape(dims)


def _idx_files_in(d: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in _FILES.items():
        for candidate in (d / f"{stem}.gz", d / stem):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def load_idx_dataset(name: str, remote: tuple[RemoteFile, ...], info: DatasetInfo,
                     data_dir=None, download_ok: bool = True) -> ImageDataset:
    hit = find_source(name, lambda d: d if _idx_files_in(d) else None, data_dir)
    if hit is None:
        if not download_ok:
            raise not_found(name, data_dir, "the four IDX files (train-images-idx3-ubyte.gz, ...)", remote)
        try:
            hit = download(remote, cache_root() / name)
        except DfkdError as exc:
            raise not_found(name, data_dir, "the four IDX files (train-images-idx3-ubyte.gz, ...)", remote,
                            why=f" and the download failed ({exc})") from None
    files = _idx_files_in(hit)
    assert files is not None

    def build() -> dict[str, np.ndarray]:
        arrays = {k: read_idx(p) for k, p in files.items()}
        for split in ("train", "test"):
            x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise DfkdError(f"{name}: {split} images {x.shape} and labels {y.shape} do not match")
            if y.max(initial=0) >= info.num_classes:
                raise DfkdError(f"{name}: {split} labels go up to {y.max()}, expected < {info.num_classes}")
            # (N, 28, 28) -> (N, 1, 32, 32), zero padding of PAD on each side
            arrays[f"{split}_images"] = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD)))[:, None]
            arrays[f"{split}_labels"] = y.astype(np.int64)
        arrays["class_names"] = np.asarray(info.class_names)
        return arrays

    arrays = cached_arrays(f"{name}-idx-pad32-v1", list(files.values()), build)
    return ImageDataset(
        torch.from_numpy(arrays["train_images"]), torch.from_numpy(arrays["train_labels"]),
        torch.from_numpy(arrays["test_images"]), torch.from_numpy(arrays["test_labels"]), info,
    )


# Standard normalisation constants of the 28x28 data (the convention of DAFL and torchvision examples).
MNIST_INFO = DatasetInfo("mnist", 10, (1, 32, 32), (0.1307,), (0.3081,), tuple(str(i) for i in range(10)))
FASHION_INFO = DatasetInfo("fashion-mnist", 10, (1, 32, 32), (0.2860,), (0.3530,), FASHION_CLASSES)
