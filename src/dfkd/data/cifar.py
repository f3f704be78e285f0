"""CIFAR-10 and CIFAR-100: the official python-pickle release (a directory or the .tar.gz), or an
image-folder tree of the same data (``../shared/data/cifar10-jpeg.tar.gz`` is one)."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..errors import DfkdError
from .info import DatasetInfo
from .locate import RemoteFile

CIFAR10_REMOTE = (RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                             "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),)
CIFAR100_REMOTE = (RemoteFile("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                              "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_INFO = DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           CIFAR10_CLASSES)
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))

# Layout of each release: (archive name, folder inside it, train members, test member, label key, meta file,
# class-names key)
_LAYOUT = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                "test_batch", b"labels", "batches.meta", b"label_names"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", ["train"], "test", b"fine_labels", "meta",
                 b"fine_label_names"),
}


def pickle_source_in(name: str, d: Path) -> Path | None:
    """The pickle release of ``name`` inside directory ``d`` (extracted folder or .tar.gz), if any."""
    archive, folder, train, test, *_ = _LAYOUT[name]
    for candidate in (d / folder, d):
        if all((candidate / m).is_file() for m in train + [test]):
            return candidate
    return d / archive if (d / archive).is_file() else None


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        # The official release is pickled numpy arrays and bytes; latin1 keeps the bytes keys intact.
        return pickle.loads(blob, encoding="bytes")
    except Exception as exc:
        raise DfkdError(f"{where} is not a CIFAR pickle batch ({exc})") from None


def decode_pickle(name: str, source: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    _, _, train, test, label_key, meta, names_key = _LAYOUT[name]
    blobs: dict[str, bytes] = {}
    wanted = train + [test, meta]
    if source.is_dir():
        for m in wanted:
            if (source / m).is_file():
                blobs[m] = (source / m).read_bytes()
    else:
        try:
            with tarfile.open(source) as tar:
                for member in tar:
                    base = Path(member.name).name
                    if member.isfile() and base in wanted:
                        blobs[base] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DfkdError(f"cannot read CIFAR archive {source}: {exc}") from None
    missing = [m for m in train + [test] if m not in blobs]
    if missing:
        raise DfkdError(f"{source} is missing CIFAR batches: {', '.join(missing)}")

    def split(members: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for m in members:
            d = _unpickle(blobs[m], f"{source}/{m}")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = split(train)
    x_test, y_test = split([test])
    n_classes = 10 if name == "cifar10" else 100
    names = [str(i) for i in range(n_classes)]
    if meta in blobs:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(blobs[meta], meta)[names_key]]
    return {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test}, names


def cifar100_info(class_names: list[str]) -> DatasetInfo:
    return DatasetInfo("cifar100", 100, (3, 32, 32), *CIFAR100_STATS, tuple(class_names))
