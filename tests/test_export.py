"""dfkd export and .safetensors import: round trips checked by an independent runtime, errors in one line."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_clear_error, run_cli
from dfkd import DfkdError, create_model, export, load_model, model_payload, save_checkpoint
from dfkd.data import dataset_info
from dfkd.models import list_models

DIGITS = dataset_info("digits")  # 1 x 32 x 32 (8 x 8 digits upscaled), 10 classes
CIFAR = dataset_info("cifar10")
CIFAR_KW = {"num_classes": CIFAR.num_classes, "in_channels": CIFAR.in_channels, "input_size": CIFAR.image_size}


def checkpoint(tmp_path, arch, info, seed=0):
    torch.manual_seed(seed)
    kw = {"num_classes": info.num_classes, "in_channels": info.in_channels, "input_size": info.image_size}
    model = create_model(arch, **kw).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so eval-mode BN is really exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / f"{arch}.pt"
    save_checkpoint(model_payload(model, arch, kw, info, role="student"), path)
    return model, path


def pixels(info, n=5, seed=1):
    return torch.rand(n, *info.input_shape, generator=torch.Generator().manual_seed(seed))


def reference_logits(model, info, x):
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return model((x - mean) / std)


def check_onnx(path, model, info):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = pixels(info, n=5)  # a batch size the export never saw
    got = session.run(None, {"images": x.numpy()})[0]
    want = reference_logits(model, info, x).numpy()
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4 * (1 + np.abs(want).max())


def check_pt2(path, model, info):
    loaded = torch.export.load(str(path)).module()
    x = pixels(info, n=3)
    want = reference_logits(model, info, x)
    assert torch.allclose(loaded(x), want, atol=1e-5 * (1 + float(want.abs().max())))


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "state-dict", "safetensors"])
def test_every_format_round_trips_and_describes_its_inputs(fmt, tmp_path):
    model, ckpt = checkpoint(tmp_path, "lenet5-half", DIGITS)
    out = tmp_path / f"student.{fmt}"
    meta = export(ckpt, out, fmt)
    assert out.exists() and json.loads((tmp_path / f"student.{fmt}.json").read_text()) == meta
    assert meta["arch"]["name"] == "lenet5-half" and meta["dataset"]["name"] == "digits"
    assert meta["input"]["shape"] == ["N", 1, 32, 32] and meta["input"]["mean"] == list(DIGITS.mean)
    assert meta["parity"]["max_abs_diff"] <= meta["parity"]["tolerance"]
    if fmt == "onnx":
        check_onnx(out, model, DIGITS)
        assert meta["input"]["normalization_in_graph"]
    elif fmt == "pt2":
        check_pt2(out, model, DIGITS)
    else:  # the weights themselves, loadable by dfkd (eval, distill, import) and by plain PyTorch
        loaded, info, _ = load_model(out, arch="lenet5-half", info=DIGITS)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
        if fmt == "safetensors":  # the header carries the metadata: no --arch/--dataset needed
            again, info2, payload = load_model(out)
            assert info2.name == "digits" and payload["arch"]["name"] == "lenet5-half"


# The deeper members of a family are built by the same code as a shallower one, with more of the same blocks
# (resnet34 as resnet18; wrn-40-k as wrn-16-k), and cost 13-19 s each to export on 2 CPU cores: the shallower
# one stands for them. Every other zoo model exports here.
SAME_BUILDER_AS = {"resnet34": "resnet18", "wrn-40-1": "wrn-16-1", "wrn-40-2": "wrn-16-2"}


def test_the_export_test_covers_every_model_builder():
    assert set(SAME_BUILDER_AS) | set(SAME_BUILDER_AS.values()) <= set(list_models())
    for deep, shallow in SAME_BUILDER_AS.items():
        a, b = (create_model(n, **CIFAR_KW) for n in (deep, shallow))
        assert type(a) is type(b) and {type(m) for m in a.modules()} == {type(m) for m in b.modules()}


@pytest.mark.slow
@pytest.mark.parametrize("arch", [m for m in list_models() if m not in SAME_BUILDER_AS])
def test_every_zoo_model_exports_to_onnx_and_pt2(arch, tmp_path):
    model, ckpt = checkpoint(tmp_path, arch, CIFAR)
    export(ckpt, tmp_path / "m.onnx", "onnx")
    check_onnx(tmp_path / "m.onnx", model, CIFAR)
    export(ckpt, tmp_path / "m.pt2", "pt2")
    check_pt2(tmp_path / "m.pt2", model, CIFAR)


def test_no_normalize_graph_takes_normalised_images(tmp_path):
    model, ckpt = checkpoint(tmp_path, "lenet5-half", DIGITS)
    meta = export(ckpt, tmp_path / "raw.pt2", "pt2", normalize=False)
    assert not meta["input"]["normalization_in_graph"]
    x = torch.randn(4, *DIGITS.input_shape)
    with torch.no_grad():
        assert torch.allclose(torch.export.load(str(tmp_path / "raw.pt2")).module()(x), model(x), atol=1e-5)


def test_a_module_with_data_dependent_control_flow_is_refused_in_one_line(tmp_path):
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(32 * 32, 10)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            if y.sum() > 0:  # depends on the data: not expressible in one exported graph
                return y
            return -y

    with pytest.raises(DfkdError, match="torch.export of Branchy failed") as err:
        export(Branchy(), tmp_path / "b.pt2", "pt2", info=DIGITS)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "b.pt2").exists() and not list(tmp_path.iterdir())
    with pytest.raises(DfkdError, match="needs info"):
        export(Branchy(), tmp_path / "b.onnx", "onnx")


def test_a_failed_parity_check_writes_nothing(monkeypatch, tmp_path):
    import importlib

    ex = importlib.import_module("dfkd.export")  # the module (dfkd.export is also the function)

    _, ckpt = checkpoint(tmp_path, "lenet5-half", DIGITS)
    real = ex._write_pt2

    def off_by_one(model, x, tmp):
        run = real(model, x, tmp)
        return lambda t: run(t) + 1.0

    monkeypatch.setattr(ex, "_write_pt2", off_by_one)
    with pytest.raises(DfkdError, match="differ from the PyTorch model's"):
        export(ckpt, tmp_path / "s.pt2", "pt2")
    assert not (tmp_path / "s.pt2").exists() and not (tmp_path / "s.pt2.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5-half.pt"]  # no temporary file left either


def test_cli_export_refuses_to_overwrite_without_force(tmp_path):
    _, ckpt = checkpoint(tmp_path, "lenet5-half", DIGITS)
    out = tmp_path / "s.safetensors"
    r = run_cli("export", str(ckpt), "--format", "safetensors", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "parity: max |diff| 0" in r.stdout
    before = out.read_bytes()
    assert_clear_error(run_cli("export", str(ckpt), "--format", "safetensors", "--out", str(out)),
                       "already exists", "--force")
    assert out.read_bytes() == before
    r = run_cli("export", str(ckpt), "--format", "safetensors", "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert_clear_error(run_cli("export", str(tmp_path / "missing.pt"), "--format", "pt2", "--out",
                               str(tmp_path / "x.pt2")), "does not exist")


def test_import_teacher_reads_safetensors_and_refuses_a_corrupt_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = create_model("lenet5-half", num_classes=10, in_channels=1, input_size=32).eval()
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))  # a third party's file
    out = tmp_path / "teacher.pt"
    r = run_cli("import-teacher", str(weights), "--arch", "lenet5-half", "--dataset", "digits", "--out", str(out))
    assert r.returncode == 0, r.stderr
    loaded, info, payload = load_model(out)
    assert payload["role"] == "teacher" and info.name == "digits"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(weights.read_bytes()[:100])
    assert_clear_error(run_cli("import-teacher", str(broken), "--arch", "lenet5-half", "--dataset", "digits",
                               "--out", str(tmp_path / "t2.pt")), "truncated or corrupt")
    assert not (tmp_path / "t2.pt").exists()
