"""Where data sets are looked for, and how the official files are downloaded and verified.

Search order for a data set called ``name`` (first hit wins):
  1. ``data_dir`` given by the caller (``--data-dir``): the files themselves, or a ``<name>`` folder in it;
  2. ``$DFKD_DATA/<name>`` (and ``$DFKD_DATA`` itself for archives such as ``cifar10-jpeg.tar.gz``);
  3. ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` installs there);
  4. ``~/.cache/dfkd/<name>`` (``$DFKD_CACHE/<name>`` if set), where downloads are saved;
then, if the data set has official URLs and downloading is allowed, download with SHA-256 checks.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DfkdError


@dataclass(frozen=True)
class RemoteFile:
    """An official file and its published checksum: SHA-256, or MD5 where that is all the source publishes."""
    filename: str
    url: str
    sha256: str = ""
    md5: str = ""

    def __post_init__(self) -> None:
        if not (self.sha256 or self.md5):
            raise ValueError(f"{self.url}: a remote file needs a sha256 or md5 checksum")

    def checksum(self) -> tuple[str, str]:
        """(algorithm, expected hex digest)."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)


def cache_root() -> Path:
    return Path(os.environ.get("DFKD_CACHE") or Path.home() / ".cache" / "dfkd")


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories that may hold data set ``name``, in search order (existing or not)."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs += [Path(data_dir), Path(data_dir) / name]
    env = os.environ.get("DFKD_DATA")
    if env:
        dirs += [Path(env) / name, Path(env)]
    dirs += [Path("/usr/share/datasets") / name, cache_root() / name]
    return dirs


def find_source(
    name: str,
    accepts: Callable[[Path], Path | None],
    data_dir: str | os.PathLike | None = None,
) -> Path | None:
    """First path for which ``accepts(dir)`` returns a source (a file or directory), else None."""
    for d in search_dirs(name, data_dir):
        if d.is_dir():
            hit = accepts(d)
            if hit is not None:
                return hit
    return None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    return digest_of(path, "sha256", chunk)


def digest_of(path: Path, algorithm: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(files: Sequence[RemoteFile], dest: Path, progress: Callable[[str], None] | None = print) -> Path:
    """Download ``files`` into ``dest`` (atomically, each verified against its checksum)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rf in files:
        target = dest / rf.filename
        algorithm, expected = rf.checksum()
        if target.exists() and digest_of(target, algorithm) == expected:
            continue
        if progress:
            progress(f"downloading {rf.url} -> {target}")
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{rf.filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(rf.url, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
            got = digest_of(Path(tmp), algorithm)
            if got != expected:
                raise DfkdError(f"checksum mismatch for {rf.url}: expected {algorithm} {expected}, got {got}")
            os.replace(tmp, target)
        except OSError as exc:
            raise DfkdError(f"could not download {rf.url}: {exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dest


def not_found(name: str, data_dir: str | os.PathLike | None, expected: str, remote: Sequence[RemoteFile] = (),
              why: str = "") -> DfkdError:
    """The one error for a data set that could not be found (or downloaded)."""
    looked = ", ".join(str(d) for d in search_dirs(name, data_dir))
    how = f"put {expected} in one of them, pass --data-dir DIR, or set DFKD_DATA=DIR"
    if remote:
        how += " (or allow the download from " + remote[0].url.rsplit("/", 1)[0] + ")"
    return DfkdError(f"data set '{name}' not found{why}; looked in: {looked}; {how}")
