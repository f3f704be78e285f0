import pytest
import torch

from dfkd import DfkdError, create_model, load_checkpoint, load_model, model_payload, save_checkpoint
from dfkd.data import dataset_info


def small_payload():
    info = dataset_info("digits")
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    model = create_model("lenet5-half", **kw)
    return model, model_payload(model, "lenet5-half", kw, info, role="student", config={"lr": 0.1},
                                metrics={"mu": 50.0})


def test_roundtrip_weights_and_metadata(tmp_path):
    model, payload = small_payload()
    save_checkpoint(payload, tmp_path / "s.pt")
    loaded, info, raw = load_model(tmp_path / "s.pt")
    assert info == dataset_info("digits") and raw["role"] == "student" and raw["metrics"] == {"mu": 50.0}
    x = torch.randn(3, 1, 32, 32)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]  # no temp files left behind


def test_pickled_module_is_refused(tmp_path):
    model, _ = small_payload()
    torch.save(model, tmp_path / "whole.pt")  # the way the official PRE-DFKD code stores teachers
    with pytest.raises(DfkdError, match="refused because loading it could run code.*import-teacher"):
        load_checkpoint(tmp_path / "whole.pt")


def test_truncated_and_missing_are_clear(tmp_path):
    _, payload = small_payload()
    save_checkpoint(payload, tmp_path / "s.pt")
    blob = (tmp_path / "s.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DfkdError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(DfkdError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "text.pt")
    with pytest.raises(DfkdError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_plain_state_dict_needs_arch(tmp_path):
    model, _ = small_payload()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(DfkdError, match="plain state_dict"):
        load_model(tmp_path / "w.pt")
    loaded, info, payload = load_model(tmp_path / "w.pt", arch="lenet5-half", info=dataset_info("digits"))
    assert payload["arch"]["name"] == "lenet5-half"
    with pytest.raises(DfkdError, match="do not fit the architecture"):
        load_model(tmp_path / "w.pt", arch="lenet5", info=dataset_info("digits"))


def test_newer_format_is_refused(tmp_path):
    _, payload = small_payload()
    payload["format_version"] = 99
    save_checkpoint(payload, tmp_path / "new.pt")
    with pytest.raises(DfkdError, match="format version 99"):
        load_model(tmp_path / "new.pt")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    _, payload = small_payload()
    save_checkpoint(payload, tmp_path / "s.pt")
    before = (tmp_path / "s.pt").read_bytes()

    def crash_mid_write(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("dfkd.checkpoint.torch.save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(payload, tmp_path / "s.pt")
    assert (tmp_path / "s.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]
