"""Data sets: one registry, each loader returning an ``ImageDataset`` (uint8 tensors + ``DatasetInfo``).

Names: ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``svhn``, ``tiny-imagenet`` and
``imagefolder:PATH`` for any ``train/<class>/*``, ``test/<class>/*`` tree (directory or .tar/.tar.gz).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DfkdError
from ..registry import Registry
from .augment import augment_batch, default_augmentation
from .cache import cached_arrays
from .cifar import CIFAR10_INFO, CIFAR10_REMOTE, CIFAR100_REMOTE, cifar100_info, decode_pickle, pickle_source_in
from .dataset import ImageDataset, iterate_batches
from .digits import DIGITS_INFO, load_digits_dataset
from .idx import FASHION_INFO, FASHION_REMOTE, MNIST_INFO, MNIST_REMOTE, load_idx_dataset, zero_border
from .imagefolder import decode_tree, is_tree
from .info import DatasetInfo
from .locate import RemoteFile, cache_root, download, find_source, not_found
from .svhn import SVHN_INFO, SVHN_REMOTE, decode_svhn, svhn_source_in
from .tiny_imagenet import TINY_IMAGENET_REMOTE, decode_tiny_imagenet, tiny_imagenet_info, tiny_imagenet_source_in

__all__ = ["DATASETS", "DatasetInfo", "ImageDataset", "load_dataset", "list_datasets", "iterate_batches",
           "augment_batch", "default_augmentation", "dataset_info", "zero_border"]

DATASETS: Registry[ImageDataset] = Registry("dataset")


@DATASETS.register("digits")
def _digits(data_dir=None, download: bool = True) -> ImageDataset:
    return load_digits_dataset()


@DATASETS.register("mnist")
def _mnist(data_dir=None, download: bool = True) -> ImageDataset:
    return load_idx_dataset("mnist", MNIST_REMOTE, MNIST_INFO, data_dir, download)


@DATASETS.register("fashion-mnist")
def _fashion(data_dir=None, download: bool = True) -> ImageDataset:
    return load_idx_dataset("fashion-mnist", FASHION_REMOTE, FASHION_INFO, data_dir, download)


def _to_dataset(arrays: dict[str, np.ndarray], info: DatasetInfo) -> ImageDataset:
    return ImageDataset(*(torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in
                          ("train_images", "train_labels", "test_images", "test_labels")), info)


def _locate(name: str, accepts, remote: tuple[RemoteFile, ...], data_dir, download_ok: bool, expected: str,
            downloaded: str = "") -> Path:
    """The source of data set ``name``: found in the search path, else downloaded (``downloaded``: the path
    of the source inside the download folder, default the first file), else one clear error."""
    source = find_source(name, accepts, data_dir)
    if source is not None:
        return source
    if not download_ok:
        raise not_found(name, data_dir, expected, remote)
    try:
        folder = download(remote, cache_root() / name)
    except DfkdError as exc:
        raise not_found(name, data_dir, expected, remote, why=f" and the download failed ({exc})") from None
    return folder / (downloaded or remote[0].filename)


def _load_cifar(name: str, remote, data_dir, download_ok: bool) -> ImageDataset:
    tree_names = [f"{name}-jpeg.tar.gz", f"{name}-jpeg.tar", f"{name}-jpeg", f"{name}-imagefolder"]

    def accepts(d: Path) -> Path | None:
        hit = pickle_source_in(name, d)
        if hit is not None:
            return hit
        for n in tree_names:
            if (d / n).exists() and is_tree(d / n):
                return d / n
        return d if is_tree(d) else None

    expected = f"the python release ({remote[0].filename}) or an image-folder tree ({tree_names[0]})"
    source = _locate(name, accepts, remote, data_dir, download_ok, expected)
    use_pickle = not is_tree(source)

    def build() -> dict[str, np.ndarray]:
        arrays, classes = decode_pickle(name, source) if use_pickle else decode_tree(source)
        arrays["class_names"] = np.asarray(classes)
        return arrays

    arrays = cached_arrays(f"{name}-{'pickle' if use_pickle else 'tree'}-v1", [source], build)
    classes = [str(c) for c in arrays["class_names"]]
    if name == "cifar10":
        if len(classes) != 10:
            raise DfkdError(f"{source} has {len(classes)} classes, CIFAR-10 has 10")
        info = DatasetInfo(**{**CIFAR10_INFO.to_dict(), "class_names": classes})
    else:
        if len(classes) != 100:
            raise DfkdError(f"{source} has {len(classes)} classes, CIFAR-100 has 100")
        info = cifar100_info(classes)
    if arrays["train_images"].shape[1:] != (3, 32, 32):
        raise DfkdError(f"{source}: images are {arrays['train_images'].shape[1:]}, CIFAR images are 3x32x32")
    return _to_dataset(arrays, info)


@DATASETS.register("cifar10")
def _cifar10(data_dir=None, download: bool = True) -> ImageDataset:
    return _load_cifar("cifar10", CIFAR10_REMOTE, data_dir, download)


@DATASETS.register("cifar100")
def _cifar100(data_dir=None, download: bool = True) -> ImageDataset:
    return _load_cifar("cifar100", CIFAR100_REMOTE, data_dir, download)


@DATASETS.register("svhn")
def _svhn(data_dir=None, download: bool = True) -> ImageDataset:
    expected = "the official train_32x32.mat and test_32x32.mat"
    source = _locate("svhn", svhn_source_in, SVHN_REMOTE, data_dir, download, expected, downloaded=".")
    files = [source / rf.filename for rf in SVHN_REMOTE]
    return _to_dataset(cached_arrays("svhn-mat-v1", files, lambda: decode_svhn(source)), SVHN_INFO)


@DATASETS.register("tiny-imagenet")
def _tiny_imagenet(data_dir=None, download: bool = True) -> ImageDataset:
    expected = "the official tiny-imagenet-200.zip (or its extracted tiny-imagenet-200 folder)"
    source = _locate("tiny-imagenet", tiny_imagenet_source_in, TINY_IMAGENET_REMOTE, data_dir, download, expected)
    arrays = cached_arrays("tiny-imagenet-v1", [source], lambda: decode_tiny_imagenet(source))
    return _to_dataset(arrays, tiny_imagenet_info([str(c) for c in arrays["class_names"]]))


def load_imagefolder(path: str | os.PathLike, image_size: int | None = None) -> ImageDataset:
    """Any image-folder tree; normalisation statistics are computed on its training split."""
    source = Path(path).expanduser()
    if not source.exists():
        raise DfkdError(f"image folder '{source}' does not exist")
    if not is_tree(source):
        raise DfkdError(f"'{source}' is not an image-folder tree: expected train/<class>/* and test/<class>/*")

    def build() -> dict[str, np.ndarray]:
        arrays, classes = decode_tree(source, image_size)
        arrays["class_names"] = np.asarray(classes)
        return arrays

    arrays = cached_arrays(f"imagefolder-{image_size or 'native'}-v1", [source], build)
    x = arrays["train_images"].astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3)) + 1e-8
    classes = [str(c) for c in arrays["class_names"]]
    info = DatasetInfo(f"imagefolder:{source}", len(classes), tuple(arrays["train_images"].shape[1:]),
                       tuple(mean), tuple(std), tuple(classes))
    return _to_dataset(arrays, info)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """Load a data set by registry name (or ``imagefolder:PATH``) as in-memory uint8 tensors."""
    if name.startswith("imagefolder:"):
        return load_imagefolder(name.split(":", 1)[1])
    return DATASETS.create(name, data_dir=data_dir, download=download)


def list_datasets() -> list[str]:
    return DATASETS.names() + ["imagefolder:PATH"]


_STATIC_INFO = {"digits": DIGITS_INFO, "mnist": MNIST_INFO, "fashion-mnist": FASHION_INFO, "cifar10": CIFAR10_INFO,
                "svhn": SVHN_INFO}


def dataset_info(name: str, data_dir=None) -> DatasetInfo:
    """The info of a data set, without loading it where it is known statically."""
    if name in _STATIC_INFO:
        return _STATIC_INFO[name]
    return load_dataset(name, data_dir).info
