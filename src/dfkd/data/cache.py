"""Cache of decoded uint8 arrays, keyed by the SHA-256 of the source files.

Decoding 60,000 JPEGs or gzipped IDX files takes seconds to minutes; loading ``.npy`` files takes a
fraction of a second. Hashing a 170 MB archive on every load would cost ~0.4 s too, so the hash of each
source file is itself remembered against its (path, size, mtime) in a small index.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .locate import cache_root, sha256_of

_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels", "class_names")


def _decoded_dir() -> Path:
    return cache_root() / "decoded"


def source_digest(path: Path) -> str:
    """SHA-256 of a file, or of all files under a directory (by relative path and content)."""
    if path.is_file():
        return _file_digest(path)
    digest = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        digest.update(str(p.relative_to(path)).encode())
        digest.update(_file_digest(p).encode())
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    stat = path.stat()
    index_path = _decoded_dir() / "sha256-index.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = sha256_of(path)
    index[key] = digest
    try:
        _atomic_write_bytes(index_path, json.dumps(index).encode())
    except OSError:
        pass  # a read-only cache only costs speed
    return digest


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_arrays(tag: str, sources: list[Path], build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the decoded arrays for ``sources``, building and caching them on the first call.

    ``tag`` names the decoder and its settings (e.g. ``fashion-mnist-pad32-v1``): change it when the
    decoding changes, so stale caches are never used.
    """
    digest = hashlib.sha256("|".join([tag] + [source_digest(s) for s in sources]).encode()).hexdigest()[:24]
    folder = _decoded_dir() / f"{tag}-{digest}"
    try:
        return {k: np.load(folder / f"{k}.npy") for k in _ARRAY_NAMES}
    except (OSError, ValueError):
        pass
    arrays = build()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        for k in _ARRAY_NAMES:
            np.save(tmp / f"{k}.npy", np.ascontiguousarray(arrays[k]))
        try:
            os.replace(tmp, folder)  # atomic publish of the whole folder
        except OSError:
            pass  # another process published it first
    except OSError:
        pass
    finally:
        if "tmp" in locals() and tmp.exists():
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
    return arrays
