"""The bare reference loops of ``dfkd bench --speed`` compute what the methods compute.

Same networks and weights in, same random stream, one iteration each, in fp32: the student and generator
(and PRE-DFKD's VAE) must come out the same. Otherwise the speed benchmark would compare dfkd against a loop
that does different work.
"""
import copy

import pytest
import torch

from dfkd import create_model
from dfkd.bench.bare_loops import BARE_LOOPS
from dfkd.data import dataset_info
from dfkd.engine.loop import resolve_config
from dfkd.methods import get_method

SMALL = {"batch_size": 32, "student_steps": 3, "generator_width": 8, "latent_dim": 16, "bf16": False,
         "channels_last": False, "iterations": 10, "lr_generator": 1e-3}
EXTRA = {"pre-dfkd": {"vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2}}


def _params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


@pytest.mark.parametrize("name", sorted(BARE_LOOPS))
def test_bare_loop_iteration_matches_the_method(name):
    info = dataset_info("fashion-mnist")
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    torch.manual_seed(0)
    teacher, student = create_model("lenet5", **kw), create_model("lenet5-half", **kw)
    cfg = resolve_config(get_method(name), {**SMALL, **EXTRA.get(name, {})})

    torch.manual_seed(1)  # both build their generator (and VAE) from the same draws
    bare_student = copy.deepcopy(student)
    step = BARE_LOOPS[name](info, copy.deepcopy(teacher), bare_student, cfg, fast=False)
    bare_gen = step.modules["generator"]
    assert step.modules["student"] is bare_student
    torch.manual_seed(1)
    method = get_method(name)(copy.deepcopy(teacher), copy.deepcopy(student), info, cfg)
    assert torch.equal(_params(bare_gen), _params(method.generator))  # same start

    for it in range(2):
        torch.manual_seed(10 + it)
        step(it)
        torch.manual_seed(10 + it)
        method.iteration(it)
    assert not torch.equal(_params(bare_student), _params(student))  # something was learned
    torch.testing.assert_close(_params(bare_student), _params(method.student), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_params(bare_gen), _params(method.generator), rtol=1e-4, atol=1e-5)
    if name == "pre-dfkd":
        torch.testing.assert_close(_params(step.modules["vae"]), _params(method.vae), rtol=1e-4, atol=1e-5)
