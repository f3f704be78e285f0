"""Model checkpoints: a plain dict that carries everything needed to rebuild and feed the model.

    {"format": "dfkd-model", "format_version": 1, "role": "teacher" | "student",
     "arch": {"name": str, "kwargs": {...}},   # create_model(name, **kwargs) rebuilds it
     "dataset": DatasetInfo.to_dict(),         # classes, input shape, normalisation mean/std
     "state_dict": {...}, "config": {...}, "metrics": {...}}

Written atomically (temp file, fsync, rename); read with ``torch.load(weights_only=True)`` so a
checkpoint can never run code. A file holding a pickled whole module is refused with a conversion hint.
``.safetensors`` files are read too: a plain state_dict, or a full checkpoint when the file's header carries
the metadata ``dfkd export --format safetensors`` writes.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.info import DatasetInfo
from .errors import DfkdError
from .io_utils import atomic_write
from .models import create_model

FORMAT = "dfkd-model"
FORMAT_VERSION = 1

CONVERT_HINT = (
    "convert it once in a trusted Python session: "
    "torch.save(torch.load(PATH, weights_only=False).state_dict(), 'weights.pt'), then run "
    "'dfkd import-teacher weights.pt --arch ARCH --dataset DATASET --out teacher.pt'"
)


def model_payload(model: nn.Module, arch: str, arch_kwargs: dict[str, Any], info: DatasetInfo, *,
                  role: str = "teacher", config: dict[str, Any] | None = None,
                  metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "role": role,
        "arch": {"name": arch, "kwargs": dict(arch_kwargs)},
        "dataset": info.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": config or {},
        "metrics": metrics or {},
    }


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> None:
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def _load_safetensors(p: Path) -> dict[str, Any]:
    """A .safetensors file as a state_dict, or as a full model checkpoint when its header has dfkd's metadata."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise DfkdError(f"reading '{p}' needs the 'safetensors' package: pip install 'dfkd[safetensors]'") from None
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # a truncated or foreign file: SafetensorError, OSError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DfkdError(f"safetensors file '{p}' is truncated or corrupt ({first[:160]})") from None
    meta = header.get("dfkd")
    if meta is None:
        return state
    try:
        meta = json.loads(meta)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "role": meta.get("role", "teacher"),
                "arch": meta["arch"], "dataset": meta["dataset"], "state_dict": state, "config": {},
                "metrics": meta.get("metrics", {})}
    except (ValueError, KeyError, TypeError):
        raise DfkdError(f"safetensors file '{p}' has unreadable dfkd metadata in its header") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``; ``.safetensors`` too); errors are one clear line."""
    p = Path(path)
    if not p.exists():
        raise DfkdError(f"checkpoint '{p}' does not exist")
    if p.is_dir():
        raise DfkdError(f"checkpoint '{p}' is a directory; pass the .pt file inside it")
    if p.suffix == ".safetensors":
        return _load_safetensors(p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise DfkdError(f"'{p}' holds pickled Python objects (e.g. a whole nn.Module) and is refused "
                            f"because loading it could run code; {CONVERT_HINT}") from None
        raise DfkdError(f"checkpoint '{p}' is corrupt: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # torch.load raises many types for damaged files (EOFError, KeyError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DfkdError(f"checkpoint '{p}' is truncated or corrupt ({first})") from None
    if not isinstance(obj, dict):
        raise DfkdError(f"'{p}' holds a {type(obj).__name__}, not a checkpoint dict or state_dict")
    return obj


def is_model_checkpoint(obj: dict[str, Any]) -> bool:
    return obj.get("format") == FORMAT


def build_model(payload: dict[str, Any], where: str = "checkpoint") -> nn.Module:
    version = payload.get("format_version")
    if version is None or version > FORMAT_VERSION:
        raise DfkdError(f"{where} has format version {version}; this dfkd reads versions <= {FORMAT_VERSION}")
    arch = payload["arch"]
    model = create_model(arch["name"], **arch["kwargs"])
    load_weights(model, payload["state_dict"], where)
    return model


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise DfkdError(f"weights in {where} do not fit the architecture: {detail}") from None


def load_model(path: str | os.PathLike, arch: str | None = None, info: DatasetInfo | None = None,
               ) -> tuple[nn.Module, DatasetInfo, dict[str, Any]]:
    """Load a model in eval mode from a dfkd checkpoint, or from a plain state_dict plus ``arch`` and ``info``.

    Returns (model, dataset info, payload); the payload of a plain state_dict is synthesised so it can be
    saved as a full dfkd checkpoint.
    """
    obj = load_checkpoint(path)
    if is_model_checkpoint(obj):
        model = build_model(obj, f"'{path}'")
        ckpt_info = DatasetInfo.from_dict(obj["dataset"])
    else:
        if arch is None or info is None:
            raise DfkdError(f"'{path}' is a plain state_dict without metadata; pass --arch ARCH and --dataset D "
                            "(or convert it with 'dfkd import-teacher')")
        if not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise DfkdError(f"'{path}' is neither a dfkd checkpoint nor a state_dict of tensors")
        kwargs = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
        model = create_model(arch, **kwargs)
        load_weights(model, obj, f"'{path}'")
        obj = model_payload(model, arch, kwargs, info, role="teacher")
        ckpt_info = info
    model.eval()
    return model, ckpt_info, obj
