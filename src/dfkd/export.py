"""From a distilled student to a deployed one: ONNX, ``torch.export`` (.pt2), a plain ``state_dict`` or
safetensors, each with a JSON of its metadata beside it, and each checked against the PyTorch model.

    dfkd export runs/x/student.pt --format onnx --out student.onnx
    dfkd.export("runs/x/student.pt", "student.onnx", format="onnx")          # or a module, with info=

Inputs of the exported graphs (``onnx``, ``pt2``): float32 images **in [0, 1]**, shape (N, C, H, W), any N; the
data set's normaliser ``(x - mean) / std`` is part of the graph, so the deployed model is fed plain pixels
(``normalize=False`` / ``--no-normalize`` leaves it out: the inputs are then normalised images). H x W is the
model's input size: dfkd's loaders zero-pad MNIST-like 28 x 28 images to 32 x 32, and a deployment must do the
same (the JSON's ``input.preprocess`` says so). ``state-dict`` and ``safetensors`` hold the weights; the JSON
(and, for safetensors, the file's own header) says how to build and feed the model.

Every export checks itself before it is kept: the exported model runs on a batch of random images (onnxruntime
for ONNX, ``torch.export.load`` for .pt2, a fresh model loaded from the written weights for the others) and its
logits must match the PyTorch model's within ``TOLERANCE``; otherwise the file is not written and the call fails
with one line. Files are written atomically, and an existing output is replaced only with ``force``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoint import load_model
from .data.info import DatasetInfo
from .errors import DfkdError
from .io_utils import atomic_write_text

FORMATS = ("onnx", "pt2", "state-dict", "safetensors")
TOLERANCE = 1e-4  # max |logits_export - logits_torch| <= TOLERANCE * (1 + max |logits_torch|)
_MNIST_LIKE = ("mnist", "fashion-mnist")


class NormalizedModel(nn.Module):
    """``model((x - mean) / std)``: a model that takes [0, 1] pixels (the data set's normaliser in front)."""

    def __init__(self, model: nn.Module, info: DatasetInfo) -> None:
        super().__init__()
        self.model = model
        # on the CPU, like the model export() hands it (exports are made and checked on the host)
        self.register_buffer("mean", torch.tensor(info.mean, dtype=torch.float32, device="cpu").view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(info.std, dtype=torch.float32, device="cpu").view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def _require(module: str, fmt: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise DfkdError(f"--format {fmt} needs the '{module}' package: pip install 'dfkd[{extra}]'") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress, warnings and log lines of their own; a command prints one summary instead."""
    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _metadata(fmt: str, out: Path, arch: dict[str, Any], info: DatasetInfo, normalize: bool, role: str,
              metrics: dict[str, Any], source: str | None) -> dict[str, Any]:
    from . import __version__

    c, h, w = info.input_shape
    graph = fmt in ("onnx", "pt2")
    if graph and normalize:
        feed = "float32 pixels in [0, 1]; the normaliser (x - mean) / std is part of the graph"
    elif graph:
        feed = "float32 images already normalised: (x - mean) / std per channel, x in [0, 1]"
    else:
        feed = (f"build {arch['name']}({', '.join(f'{k}={v!r}' for k, v in arch['kwargs'].items())}) and load "
                "these weights; feed it (x - mean) / std per channel, x in [0, 1]")
    preprocess = ["images as float32 in [0, 1], (N, C, H, W)"]
    if info.name in _MNIST_LIKE:
        preprocess.append("28 x 28 images zero-padded by 2 pixels on every side to 32 x 32 (as dfkd's loaders do)")
    return {
        "format": fmt, "file": out.name, "dfkd_version": __version__, "role": role, "arch": arch,
        "dataset": info.to_dict(),
        "input": {"name": "images" if graph else None, "shape": ["N", c, h, w], "dtype": "float32",
                  "normalization_in_graph": bool(graph and normalize), "mean": list(info.mean),
                  "std": list(info.std), "feed": feed, "preprocess": preprocess},
        "output": {"name": "logits" if graph else None, "shape": ["N", info.num_classes],
                   "classes": list(info.class_names)},
        "metrics": metrics, "source": source,
    }


def _check(reference: Callable[[torch.Tensor], torch.Tensor], exported: Callable[[torch.Tensor], torch.Tensor],
           x: torch.Tensor, what: str) -> dict[str, Any]:
    with torch.no_grad():
        want = reference(x).float()
        got = exported(x).float()
    if got.shape != want.shape:
        raise DfkdError(f"the exported model returns shape {tuple(got.shape)}, the PyTorch model "
                        f"{tuple(want.shape)}; the export was not written")
    diff = float((got - want).abs().max())
    bound = TOLERANCE * (1.0 + float(want.abs().max()))
    if not diff <= bound:
        raise DfkdError(f"the exported model's logits differ from the PyTorch model's by {diff:.3g} (> {bound:.3g}, "
                        f"checked with {what}); the export was not written")
    return {"max_abs_diff": diff, "tolerance": bound, "checked_with": what, "batch": int(x.shape[0])}


def _name(model: nn.Module) -> str:
    return type(model.model if isinstance(model, NormalizedModel) else model).__name__


def _write_onnx(model: nn.Module, x: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    _require("onnx", "onnx", "onnx")
    _require("onnxscript", "onnx", "onnx")
    ort = _require("onnxruntime", "onnx", "onnx")
    try:
        with _quiet():
            torch.onnx.export(model, (x,), str(tmp), input_names=["images"], output_names=["logits"],
                              dynamic_shapes=({0: "N"},), dynamo=True, external_data=False)
    except Exception as exc:
        raise DfkdError(f"ONNX export of {_name(model)} failed: {_first_line(exc)}") from None
    try:
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise DfkdError(f"onnxruntime cannot load the exported model: {_first_line(exc)}") from None
    return lambda t: torch.from_numpy(session.run(None, {"images": t.numpy()})[0])


def _write_pt2(model: nn.Module, x: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        with _quiet():
            program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
            torch.export.save(program, str(tmp))
    except Exception as exc:
        raise DfkdError(f"torch.export of {_name(model)} failed: {_first_line(exc)}") from None
    loaded = torch.export.load(str(tmp)).module()
    return lambda t: loaded(t)


def _write_weights(fmt: str, model: nn.Module, meta: dict[str, Any], tmp: Path
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        st = _require("safetensors", "safetensors", "safetensors")
        import safetensors.torch  # noqa: F401  (the submodule)

        st.torch.save_file(state, str(tmp), metadata={"dfkd": json.dumps(meta)})
        loaded = st.torch.load_file(str(tmp))
    else:
        torch.save(state, tmp)
        loaded = torch.load(tmp, map_location="cpu", weights_only=True)
    fresh = copy.deepcopy(model)
    fresh.load_state_dict(loaded, strict=True)
    fresh.eval()
    return lambda t: fresh(t)


def export(source: nn.Module | str | os.PathLike, out: str | os.PathLike, format: str = "onnx", *,
           info: DatasetInfo | None = None, arch: str | None = None, normalize: bool = True, force: bool = False,
           check_batch: int = 8, seed: int = 0) -> dict[str, Any]:
    """Export ``source`` (a dfkd checkpoint path, a plain state_dict path with ``arch`` and ``info``, or an
    ``nn.Module`` with ``info``) to ``out`` in ``format`` (module docstring). Writes ``out`` and ``out + '.json'``;
    returns that JSON (with the parity check's figures)."""
    if format not in FORMATS:
        raise DfkdError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    for path in (out, sidecar):
        if path.exists() and not force:
            raise DfkdError(f"'{path}' already exists; pass --force (force=True) to replace it")
        if path.is_dir():
            raise DfkdError(f"'{path}' is a directory; give a file name")
    if isinstance(source, nn.Module):
        if info is None:
            raise DfkdError("exporting a module needs info=DatasetInfo(...) (its input shape and normalisation)")
        model, role, metrics, src = source, "model", {}, None
        arch_rec = {"name": arch or type(source).__name__, "kwargs": {}}
    else:
        model, info, payload = load_model(source, arch=arch, info=info)
        role, metrics, src = payload.get("role", "model"), payload.get("metrics", {}), str(source)
        arch_rec = dict(payload["arch"])
    model = copy.deepcopy(model).cpu().float().eval().to(memory_format=torch.contiguous_format)
    model.requires_grad_(False)
    meta = _metadata(format, out, arch_rec, info, normalize, role, metrics, src)
    graph = format in ("onnx", "pt2")
    target = NormalizedModel(model, info).eval() if graph and normalize else model
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.rand(check_batch, *info.input_shape, generator=g, device="cpu")  # pixels in [0, 1], on the host
    x_in = x if (graph and normalize) else info.normalize((x * 255).round().to(torch.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")  # same suffix: exporters check it
    try:
        if format == "onnx":
            run = _write_onnx(target, x_in[:2], tmp)
            meta["parity"] = _check(target, run, x_in, "onnxruntime")
        elif format == "pt2":
            with _quiet():
                run = _write_pt2(target, x_in[:2], tmp)
            meta["parity"] = _check(target, run, x_in, "torch.export.load")
        else:
            run = _write_weights(format, target, {k: v for k, v in meta.items() if k != "parity"}, tmp)
            meta["parity"] = _check(target, run, x_in, "load_state_dict into a fresh copy")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(sidecar, json.dumps(meta, indent=2) + "\n")
    return meta


__all__ = ["FORMATS", "NormalizedModel", "TOLERANCE", "export"]
