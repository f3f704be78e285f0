"""Image-folder trees: ``train/<class>/*`` and ``test/<class>/*``, as a directory or a .tar/.tar.gz.

Class indices follow the alphabetical order of the class folder names (as torchvision's ImageFolder).
All images are decoded with Pillow and resized to the size of the first image (or ``image_size``).
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DfkdError

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def is_tree(path: Path) -> bool:
    """Whether ``path`` (directory or tar archive) looks like an image-folder tree with both splits."""
    if path.is_dir():
        return (path / "train").is_dir() and (path / "test").is_dir()
    if path.is_file() and tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as tar:
                heads = set()
                for m in tar:
                    parts = Path(m.name).parts
                    if len(parts) >= 3:
                        heads.add(parts[-3])
                    if {"train", "test"} <= heads:
                        return True
        except (tarfile.TarError, OSError):
            return False
    return False


def _entries_from_dir(root: Path) -> list[tuple[str, str, bytes]]:
    out = []
    for split in ("train", "test"):
        for p in sorted((root / split).glob("*/*")):
            if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file():
                out.append((split, p.parent.name, p.read_bytes()))
    return out


def _entries_from_tar(path: Path) -> list[tuple[str, str, bytes]]:
    out = []
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                parts = Path(m.name).parts
                if not m.isfile() or len(parts) < 3 or Path(m.name).suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                split, cls = parts[-3], parts[-2]
                if split in ("train", "test"):
                    out.append((split, cls, tar.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DfkdError(f"cannot read image archive {path}: {exc}") from None
    out.sort(key=lambda e: (e[0], e[1]))
    return out


def decode_tree(path: Path, image_size: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Decode a tree into uint8 arrays (N, C, H, W) and int64 labels; return arrays and class names."""
    entries = _entries_from_dir(path) if path.is_dir() else _entries_from_tar(path)
    classes = sorted({cls for split, cls, _ in entries if split == "train"})
    if not classes:
        raise DfkdError(f"{path} has no images under train/<class>/")
    test_classes = {cls for split, cls, _ in entries if split == "test"}
    if not test_classes:
        raise DfkdError(f"{path} has no images under test/<class>/")
    if not test_classes <= set(classes):
        raise DfkdError(f"{path}: test classes {sorted(test_classes - set(classes))} have no train folder")
    index = {c: i for i, c in enumerate(classes)}

    def open_image(blob: bytes) -> Image.Image:
        try:
            img = Image.open(io.BytesIO(blob))
            img.load()
            return img
        except Exception as exc:  # Pillow raises many types for bad files
            raise DfkdError(f"{path}: cannot decode an image ({exc})") from None

    first = open_image(entries[0][2])
    grey = first.mode in ("L", "1", "I;16", "I")
    mode = "L" if grey else "RGB"
    size = (image_size, image_size) if image_size else first.size
    arrays: dict[str, list] = {"train_images": [], "train_labels": [], "test_images": [], "test_labels": []}
    for split, cls, blob in entries:
        img = open_image(blob).convert(mode)
        if img.size != size:
            img = img.resize(size, Image.BILINEAR)
        a = np.asarray(img, dtype=np.uint8)
        arrays[f"{split}_images"].append(a[None] if grey else a.transpose(2, 0, 1))
        arrays[f"{split}_labels"].append(index[cls])
    return {
        "train_images": np.stack(arrays["train_images"]),
        "train_labels": np.asarray(arrays["train_labels"], dtype=np.int64),
        "test_images": np.stack(arrays["test_images"]),
        "test_labels": np.asarray(arrays["test_labels"], dtype=np.int64),
    }, classes
