"""Tiny-ImageNet-200 (CS231n): 200 classes, 64x64 RGB, 500 training and 50 validation images per class.

The official ``tiny-imagenet-200.zip`` (or its extracted folder) holds ``wnids.txt`` (the 200 WordNet
ids), ``words.txt`` (id -> names), ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` with labels
in ``val/val_annotations.txt`` (file, wnid, box). The ``test`` split has no labels, so, as is usual,
the validation split serves as the test set. Class index = position of the wnid in sorted order; class
names are the first name in ``words.txt``. A few images are greyscale JPEGs: every image is decoded to RGB.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..errors import DfkdError
from .info import DatasetInfo
from .locate import RemoteFile

FOLDER = "tiny-imagenet-200"
# The source publishes no SHA-256; the MD5 is the one every loader of this archive checks.
TINY_IMAGENET_REMOTE = (RemoteFile("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                                   md5="90528d7ca1a48142e341f4ef8d21d0de"),)
# Per-channel statistics of the 100,000 training images.
TINY_IMAGENET_STATS = ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821))


def tiny_imagenet_info(class_names: list[str]) -> DatasetInfo:
    """200 classes in the release (fewer if ``wnids.txt`` was cut down)."""
    return DatasetInfo("tiny-imagenet", len(class_names), (3, 64, 64), *TINY_IMAGENET_STATS, tuple(class_names))


def tiny_imagenet_source_in(d: Path) -> Path | None:
    """The extracted folder or the zip inside ``d`` (or ``d`` itself if it is the extracted folder)."""
    for candidate in (d / FOLDER, d):
        if (candidate / "wnids.txt").is_file() and (candidate / "train").is_dir():
            return candidate
    return d / TINY_IMAGENET_REMOTE[0].filename if (d / TINY_IMAGENET_REMOTE[0].filename).is_file() else None


class _Files:
    """Read access to the release's files (folder or zip) by their path relative to ``tiny-imagenet-200/``."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, str] = {}  # relative path -> zip member name
        if source.is_dir():
            self.names = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
            return
        try:
            self.zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DfkdError(f"cannot read Tiny-ImageNet archive {source}: {exc}") from None
        # Members are stored under tiny-imagenet-200/...; strip that first folder.
        self.members = {self._relative(n): n for n in self.zip.namelist() if not n.endswith("/")}
        self.names = set(self.members)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    @staticmethod
    def _relative(name: str) -> str:
        parts = PurePosixPath(name).parts
        return PurePosixPath(*parts[1:]).as_posix() if parts and parts[0] == FOLDER else name

    def read(self, rel: str) -> bytes:
        try:
            if self.zip is None:
                return (self.source / rel).read_bytes()
            return self.zip.read(self.members[rel])
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise DfkdError(f"{self.source}: cannot read {rel} ({exc})") from None

    def text(self, rel: str) -> str:
        return self.read(rel).decode("utf-8")


def _decode(blob: bytes, where: str) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(blob)).convert("RGB")
    except Exception as exc:  # Pillow raises many types for bad files
        raise DfkdError(f"cannot decode {where} ({exc})") from None
    if img.size != (64, 64):
        img = img.resize((64, 64), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)  # (3, 64, 64)


def decode_tiny_imagenet(source: Path) -> dict[str, np.ndarray]:
    files = _Files(source)
    try:
        return _decode_release(files)
    finally:
        files.close()


def _decode_release(files: _Files) -> dict[str, np.ndarray]:
    source, available = files.source, files.names
    for required in ("wnids.txt", "val/val_annotations.txt"):
        if required not in available:
            raise DfkdError(f"{source} is not the Tiny-ImageNet release: {required} is missing")
    wnids = sorted(line.strip() for line in files.text("wnids.txt").splitlines() if line.strip())
    index = {w: i for i, w in enumerate(wnids)}
    words = {}
    if "words.txt" in available:
        for line in files.text("words.txt").splitlines():
            wnid, _, names = line.partition("\t")
            words[wnid.strip()] = names.split(",")[0].strip()
    train = sorted(n for n in available if n.startswith("train/") and n.lower().endswith((".jpeg", ".jpg"))
                   and PurePosixPath(n).parts[1] in index)
    val = []
    for line in files.text("val/val_annotations.txt").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1] in index:
            val.append((f"val/images/{fields[0]}", index[fields[1]]))
    if not train or not val:
        raise DfkdError(f"{source}: found {len(train)} training and {len(val)} validation images of the "
                        f"{len(wnids)} classes in wnids.txt")
    return {
        "train_images": np.stack([_decode(files.read(n), n) for n in train]),
        "train_labels": np.asarray([index[PurePosixPath(n).parts[1]] for n in train], dtype=np.int64),
        "test_images": np.stack([_decode(files.read(n), n) for n, _ in val]),
        "test_labels": np.asarray([label for _, label in val], dtype=np.int64),
        "class_names": np.asarray([words.get(w) or w for w in wnids]),
    }
