from dataclasses import dataclass

import pytest

from dfkd import DfkdError
from dfkd.config import parse_set_options, read_yaml, update_config, write_yaml
from dfkd.schedules import cosine_lr


@dataclass
class Cfg:
    lr: float = 0.1
    steps: int = 10
    bf16: bool = False
    name: str = "x"
    weights: tuple[float, ...] = (1.0, 2.0)
    limit: int | None = None


def test_overrides_are_typed():
    cfg = update_config(Cfg(), parse_set_options(["lr=1e-3", "steps=20", "bf16=true", "weights=0.5,1.5",
                                                  "limit=3"]))
    assert cfg == Cfg(lr=1e-3, steps=20, bf16=True, weights=(0.5, 1.5), limit=3)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(DfkdError, match="unknown config key 'lrr'; valid keys: lr, steps"):
        update_config(Cfg(), {"lrr": 1})


@pytest.mark.parametrize("key,value,msg", [("steps", 1.5, "integer"), ("steps", "many", "integer"),
                                           ("bf16", "maybe", "true/false"), ("lr", "fast", "number")])
def test_bad_values(key, value, msg):
    with pytest.raises(DfkdError, match=msg):
        update_config(Cfg(), {key: value})


def test_set_needs_key_value():
    with pytest.raises(DfkdError, match="key=value"):
        parse_set_options(["lr"])


def test_yaml_roundtrip_and_errors(tmp_path):
    write_yaml({"lr": 0.5, "steps": 3}, tmp_path / "c.yaml")
    assert update_config(Cfg(), read_yaml(tmp_path / "c.yaml")) == Cfg(lr=0.5, steps=3)
    (tmp_path / "bad.yaml").write_text("- a list\n- not a mapping\n")
    with pytest.raises(DfkdError, match="mapping"):
        read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "code.yaml").write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(DfkdError, match="cannot read config"):
        read_yaml(tmp_path / "code.yaml")
    with pytest.raises(DfkdError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")


def test_cosine_schedule_values():
    assert cosine_lr(0, 100, 1.0, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr(10, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 1.0, warmup_steps=10) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 1.0, warmup_steps=10, min_lr=0.01) == pytest.approx(0.01)
