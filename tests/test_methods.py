"""Registry-driven method tests: every method runs two iterations on tiny networks, stays finite and
round-trips its state; plus the replay-specific guarantees of PRE-DFKD and MB-DFKD."""
import io
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_method_config, tiny_teacher
from dfkd import DfkdError, create_model, load_model, losses
from dfkd.data import dataset_info
from dfkd.engine import distill
from dfkd.engine.loop import resolve_config
from dfkd.methods import get_method, list_methods
from dfkd.replay import MemoryBank, ReplayVAE

INFO = dataset_info("digits")
TINY = {"iterations": 2, "batch_size": 16, "student_steps": 2, "generator_width": 4, "latent_dim": 8,
        "eval_every": 1, "log_every": 1, "bf16": False, "channels_last": False}
TINY_EXTRA = {"pre-dfkd": {"vae_width": 4, "vae_latent_dim": 8, "vae_updates": 2},
              "mb-dfkd": {"memory_batches": 2, "memory_batch_size": 4, "push_every": 1}}
TINY_EXTRA["pre-dfkd+"] = TINY_EXTRA["pre-dfkd"]


def tiny_config(name, **kw):
    return tiny_method_config(name, {**TINY, **TINY_EXTRA.get(name, {}), **kw})


def nets(seed=0, name=None):
    """(teacher, student); the teacher has BatchNorm layers for the methods that need them."""
    torch.manual_seed(seed)
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    teacher = tiny_teacher(name) if name is not None else create_model("lenet5-half", **kw)
    return teacher, create_model("lenet5-half", **kw)


@pytest.mark.parametrize("name", list_methods())
def test_two_iterations_finite_and_checkpoint_roundtrip(name, tmp_path):
    teacher, student = nets(name=name)
    result = distill(teacher, student, name, tiny_config(name), info=INFO, out_dir=tmp_path, progress=False,
                     student_arch="lenet5-half")
    text = (tmp_path / "metrics.jsonl").read_text()
    rows = [json.loads(l) for l in text.splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]  # no eval data: the data-free progress signal only
    assert len(train) == 2 and "NaN" not in text and "s_loss" in train[-1]
    assert len(evals) == 2 and all(0 <= e["agree_novel"] <= 100 and "test_acc" not in e for e in evals)
    assert ("agree_replay" in evals[-1]) == (name in ("pre-dfkd", "pre-dfkd+", "mb-dfkd", "adi", "cmi", "fast"))
    # The method's full state round-trips through a weights_only checkpoint.
    method = result.method
    buf = io.BytesIO()
    torch.save(method.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    # Only a method that trains a generator builds, optimises and checkpoints one.
    has_generator = get_method(name).synthesizer == "generator"
    assert ("generator" in state["modules"]) == (method.generator is not None) == has_generator
    assert "generator" not in state["optimizers"] or has_generator
    t2, s2 = nets(seed=1, name=name)
    other = get_method(name)(t2, s2, INFO, resolve_config(get_method(name), tiny_config(name)))
    other.load_state_dict(state)
    for key, module in method.modules().items():
        for (k, a), (_, b) in zip(module.state_dict().items(), other.modules()[key].state_dict().items()):
            assert torch.equal(a, b), (key, k)
    # student.pt carries metadata and reloads to the same function.
    loaded, info, payload = load_model(tmp_path / "student.pt")
    x = torch.randn(3, 1, 32, 32)
    assert info == INFO and payload["role"] == "student" and payload["config"]["method"] == name
    assert torch.allclose(loaded(x), result.student(x))


@pytest.mark.parametrize("name", list_methods())
def test_teacher_stays_frozen_and_untouched(name):
    teacher, student = nets(name=name)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distill(teacher, student, name, tiny_config(name), info=INFO, progress=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())


def test_student_in_eval_mode_while_scoring_for_generator():
    # A student with BatchNorm: its running statistics must only move during student steps.
    teacher = create_model("lenet5-half", num_classes=10, in_channels=1)
    student = create_model("cnn-bn", num_classes=10, in_channels=1, width=4)
    method = get_method("dfad")(teacher, student, INFO, resolve_config(get_method("dfad"), tiny_config("dfad")))
    bn = next(m for m in student.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    method.generator_step()
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in student.parameters())  # nothing computed for the student's weights
    assert student.training  # restored
    method.student_step(method.synthesize(16))
    assert not torch.equal(bn.running_mean, before)


def test_pre_dfkd_keeps_no_synthetic_sample_between_iterations():
    teacher, student = nets()
    cls = get_method("pre-dfkd")
    method = cls(teacher, student, INFO, resolve_config(cls, tiny_config("pre-dfkd")))
    allowed = {id(t) for m in method.modules().values() for t in list(m.parameters()) + list(m.buffers())}
    allowed |= {id(t) for o in method.optimizers().values() for s in o.state.values() for t in s.values()
                if torch.is_tensor(t)}
    vae_before = {k: v.clone() for k, v in method.vae.state_dict().items()}
    method.iteration(0)
    method.iteration(1)
    allowed |= {id(t) for o in method.optimizers().values() for s in o.state.values() for t in s.values()
                if torch.is_tensor(t)}
    allowed |= {id(t) for m in method.modules().values() for t in list(m.parameters()) + list(m.buffers())}

    def tensors(obj, depth=0):
        if torch.is_tensor(obj):
            yield obj
        elif depth < 3 and isinstance(obj, (list, tuple, set)):
            for o in obj:
                yield from tensors(o, depth + 1)
        elif depth < 3 and isinstance(obj, dict):
            for o in obj.values():
                yield from tensors(o, depth + 1)

    stray = [tuple(t.shape) for t in tensors(vars(method)) if id(t) not in allowed]
    assert not stray, f"tensors kept on the method between iterations: {stray}"
    assert method.replay_memory_bytes() == method.vae.nbytes()
    assert any(not torch.equal(vae_before[k], v) for k, v in method.vae.state_dict().items())  # the VAE learned


def test_replay_memory_bytes_match_tensor_sizes():
    vae = ReplayVAE((3, 32, 32))
    expected = sum(p.numel() * 4 for p in vae.parameters()) + sum(b.numel() * b.element_size() for b in vae.buffers())
    assert vae.nbytes() == expected
    for shape in [(1, 32, 32), (3, 32, 32)]:
        assert ReplayVAE(shape).nbytes() <= 2 * 10**6  # the paper's claim: about 2 MB of replay memory
    bank = MemoryBank(1280, (1, 32, 32))
    assert bank.nbytes() == 1280 * 32 * 32 * 4 + 2 * 8


def test_memory_bank_is_a_ring_buffer():
    bank = MemoryBank(4, (1,))
    assert bank.sample(3).shape == (0, 1)
    bank.push(torch.tensor([[1.0], [2.0], [3.0]]))
    assert len(bank) == 3
    bank.push(torch.tensor([[4.0], [5.0]]))  # overwrites the oldest (1.0)
    assert len(bank) == 4 and sorted(bank.samples.flatten().tolist()) == [2.0, 3.0, 4.0, 5.0]
    assert set(bank.sample(50).flatten().tolist()) <= {2.0, 3.0, 4.0, 5.0}
    state = bank.state_dict()
    other = MemoryBank(4, (1,))
    other.load_state_dict(state)
    assert torch.equal(other.samples, bank.samples) and int(other.head) == int(bank.head)


def test_mismatched_student_is_a_clear_error():
    from dfkd import DfkdError
    teacher = create_model("lenet5-half", num_classes=10, in_channels=1)
    student = create_model("lenet5-half", num_classes=7, in_channels=1)
    with pytest.raises(DfkdError, match="student predicts 7 classes but the teacher predicts 10"):
        distill(teacher, student, "dfad", tiny_config("dfad"), info=INFO, progress=False)
    student3 = create_model("lenet5-half", num_classes=10, in_channels=3)
    with pytest.raises(DfkdError, match="does not accept inputs of shape"):
        distill(teacher, student3, "dfad", tiny_config("dfad"), info=INFO, progress=False)


@pytest.mark.parametrize("key,value", [("batch_size", 0), ("iterations", -1), ("lr_student", -0.1),
                                       ("student_loss", "mse")])
def test_invalid_config_values(key, value):
    from dfkd import DfkdError
    with pytest.raises(DfkdError, match=key):
        resolve_config(get_method("pre-dfkd"), {key: value})


def test_distill_refuses_an_existing_run_unless_overwrite(tmp_path):
    from dfkd import DfkdError
    teacher, student = nets()
    distill(teacher, student, "noise", tiny_config("noise"), info=INFO, out_dir=tmp_path, progress=False)
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(DfkdError, match="already holds a run"):
        distill(teacher, student, "noise", tiny_config("noise"), info=INFO, out_dir=tmp_path, progress=False)
    assert (tmp_path / "metrics.jsonl").read_text() == before
    distill(teacher, student, "noise", tiny_config("noise", iterations=3), info=INFO, out_dir=tmp_path,
            progress=False, overwrite=True)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if r["kind"] == "train"] == [1, 2, 3]  # replaced, not appended


def test_ema_generator_follows_the_generator_and_feeds_the_student():
    teacher, student = nets()
    cfg = resolve_config(get_method("dfad"), tiny_config("dfad", ema_generator=0.9, ema_fraction=0.25))
    m = get_method("dfad")(teacher, student, INFO, cfg)
    ema = m.modules()["generator_ema"]
    before_ema = [p.clone() for p in ema.parameters()]
    m.generator_step()
    for e0, e, g in zip(before_ema, ema.parameters(), m.generator.parameters()):
        assert torch.allclose(e, 0.9 * e0 + 0.1 * g, atol=1e-6)  # ema <- m ema + (1 - m) generator
    assert not any(p.requires_grad for p in ema.parameters())
    torch.manual_seed(3)
    x = m.synthesize(8)
    torch.manual_seed(3)
    z = m.generator.sample_latent(8)
    with torch.no_grad():
        assert torch.allclose(x[:6], m.generator(z[:6]), atol=1e-5)
        assert torch.allclose(x[6:], ema(z[6:]), atol=1e-5)  # a quarter from the EMA copy
    assert "generator_ema" in m.state_dict()["modules"]


def test_pre_dfkd_plus_uses_the_bn_prior_only_with_a_bn_teacher():
    cls = get_method("pre-dfkd+")
    cfg = resolve_config(cls, tiny_config("pre-dfkd+"))
    teacher, student = nets()  # LeNet: no BatchNorm, so no prior and no error
    m = cls(teacher, student, INFO, cfg)
    assert m.cfg.w_bn == 0 and m.objective.term("bn") is None and m.cfg.w_activation == 0.1
    bn_teacher = create_model("cnn-bn", num_classes=10, in_channels=1, width=4)
    m = cls(bn_teacher, create_model("lenet5-half", num_classes=10, in_channels=1), INFO, cfg)
    assert m.cfg.w_bn == cfg.w_bn_auto == 1.0 and m.objective.term("bn") is not None
    # with the BN prior the activation prior goes (DataFree's rule), so its term is not in the objective
    assert m.cfg.w_activation == cfg.w_activation_bn == 0 and m.objective.term("activation") is None
    out, _, _ = m.generator_step()
    assert "g_bn" in out and torch.isfinite(out["g_bn"])
    m.close()
    assert not any(mod._forward_hooks for mod in bn_teacher.modules())
    explicit = cls(bn_teacher, create_model("lenet5-half", num_classes=10, in_channels=1), INFO,
                   resolve_config(cls, tiny_config("pre-dfkd+", w_bn=2.0)))
    assert explicit.cfg.w_activation == 0.1 and explicit.objective.term("activation") is not None
    explicit.close()
    off = cls(bn_teacher, create_model("lenet5-half", num_classes=10, in_channels=1), INFO,
              resolve_config(cls, tiny_config("pre-dfkd+", w_bn_auto=0)))
    assert off.objective.term("bn") is None
    assert get_method("pre-dfkd").Config().w_bn == 0  # the faithful method is unchanged


def test_pre_dfkd_plus_augments_like_the_data_sets_teacher_training():
    cls = get_method("pre-dfkd+")
    cfg = resolve_config(cls, tiny_config("pre-dfkd+"))
    teacher, student = nets()
    assert not cls(teacher, student, INFO, cfg).augmentation.active  # digits: not flip-invariant, no augmentation
    cifar = dataset_info("cifar10")
    t3, s3 = (create_model("lenet5-half", num_classes=10, in_channels=3) for _ in range(2))
    aug = cls(t3, s3, cifar, cfg).augmentation
    assert aug.crop_padding == 4 and aug.hflip
    explicit = cls(t3, s3, cifar, resolve_config(cls, tiny_config("pre-dfkd+", augment_crop=2))).augmentation
    assert explicit.crop_padding == 2 and not explicit.hflip
    assert not cls(t3, s3, cifar, resolve_config(cls, tiny_config("pre-dfkd+", augment_auto=False))).augmentation.active


def test_pre_dfkd_plus_draws_the_black_frame_of_mnist_like_data():
    """Fashion-MNIST images are zero-padded 28 -> 32 by the loader: the generator draws the inner 28 x 28 and the
    2-pixel frame is the normalised black of every real image (digits and CIFAR have no frame)."""
    cls = get_method("pre-dfkd+")
    fmnist = dataset_info("fashion-mnist")
    cfg = resolve_config(cls, tiny_config("pre-dfkd+"))
    teacher, student = nets()
    m = cls(teacher, student, fmnist, cfg)
    assert m.cfg.generator_options == {"output": "sigmoid", "border": 2}
    x = m.synthesize(8).float()
    black = -fmnist.mean[0] / fmnist.std[0]
    frame = torch.ones(32, 32, dtype=torch.bool)
    frame[2:30, 2:30] = False
    assert torch.allclose(x[:, 0][:, frame], torch.full_like(x[:, 0][:, frame], black), atol=1e-6)
    assert (x[:, 0, 2:30, 2:30] > black + 1e-3).any()  # the inside is drawn
    for d in ("digits", "cifar10"):
        assert "border" not in cls.configure(cfg, teacher, dataset_info(d)).generator_options
    assert "border" not in cls.configure(resolve_config(cls, tiny_config("pre-dfkd+", border_auto=False)), teacher,
                                         fmnist).generator_options
    kept = resolve_config(cls, tiny_config("pre-dfkd+", generator_options={"output": "sigmoid", "border": 0}))
    assert cls.configure(kept, teacher, fmnist).generator_options["border"] == 0  # an explicit choice stays
    # the replay memory draws the same frame (vae_border), or learns it like any pixel (vae_border=False)
    framed = cls(teacher, student, fmnist, resolve_config(cls, tiny_config("pre-dfkd+", vae_border=True)))
    replay = framed.draw_replay(8).float()
    assert torch.allclose(replay[:, 0][:, frame], torch.full_like(replay[:, 0][:, frame], black), atol=1e-6)
    assert not torch.allclose(m.draw_replay(8).float()[:, 0][:, frame], torch.tensor(black), atol=1e-3)


def test_generator_jitter_scores_a_translated_view():
    """generator_jitter=N: each generator step's objective sees G(z) rolled by one (dy, dx) in [-N, N]^2 (the step
    returns that view); with N at most the frame, the view is the framed image translated with black fill. The
    generator's own samples keep their exact frame; with jitter 0 a step scores the batch itself and draws nothing
    from the random stream but its latents."""
    cls = get_method("pre-dfkd+")
    fmnist = dataset_info("fashion-mnist")
    black = -fmnist.mean[0] / fmnist.std[0]
    teacher, student = nets()
    m = cls(teacher, student, fmnist, resolve_config(cls, tiny_config("pre-dfkd+", generator_jitter=2)))
    seen = []
    real_passes = m.objective.passes

    def spy(x, **kw):
        seen.append((x.detach().clone(), kw.get("source")))
        return real_passes(x, **kw)

    m.objective.passes = spy
    shifts = set()
    for _ in range(12):
        out, view, _ = m.synth.step()
        x, source = seen[-1]
        assert source is not None and torch.equal(view, x) and torch.isfinite(out["g_loss"])
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(torch.roll(source.detach(), (dy, dx), (2, 3)), x)]
        assert match, "the view is a roll of the generated batch by at most 2 pixels"
        shifts.add(match[0])
        # what a roll of at most the frame's width wraps in is frame: a translation with black fill
        assert torch.allclose(source[:, 0, :2].float(), torch.tensor(black), atol=1e-6)
        assert torch.allclose(source[:, 0, :, -2:].float(), torch.tensor(black), atol=1e-6)
    assert len(shifts) > 1
    assert torch.allclose(m.synthesize(4).float()[:, 0, :2], torch.tensor(black), atol=1e-6)  # samples: exact frame
    # jitter 0: the objective scores the batch itself, no view, no draw from the random stream
    plain = cls(*nets(), fmnist, resolve_config(cls, tiny_config("pre-dfkd+")))
    plain.objective.passes, seen[:] = spy, []
    torch.manual_seed(5)
    plain.synth.step()
    after_step = torch.rand(3)
    torch.manual_seed(5)
    plain.synth.inputs(plain.cfg.batch_size)  # the step's only draw: its latents
    assert seen[-1][1] is None and torch.equal(torch.rand(3), after_step)
    with pytest.raises(DfkdError, match="generator_jitter"):
        resolve_config(cls, tiny_config("pre-dfkd+", generator_jitter=-1))
    with pytest.raises(DfkdError, match=r"generator_jitter=32 must be smaller than the image side \(32 px\)"):
        cls(*nets(), fmnist, resolve_config(cls, tiny_config("pre-dfkd+", generator_jitter=32)))
    adi = get_method("adi")
    with pytest.raises(DfkdError, match="pixel_jitter=40"):
        adi(*nets(name="adi"), fmnist, resolve_config(adi, tiny_config("adi", pixel_jitter=40)))


def test_augmented_student_step_shows_teacher_and_student_the_same_augmented_batch():
    teacher, student = nets()
    cls = get_method("dfad")
    m = cls(teacher, student, INFO, resolve_config(cls, tiny_config("dfad", augment_crop=4, augment_flip=True)))
    seen = {}
    hooks = [net.register_forward_pre_hook(lambda mod, inp, key=key: seen.__setitem__(key, inp[0].clone()))
             for key, net in (("teacher", teacher), ("student", student))]
    x = m.synthesize(16)
    given_logits = torch.zeros(16, 10)  # must be ignored: the teacher labels the augmented batch
    m.student_step(x, given_logits)
    for h in hooks:
        h.remove()
    assert seen["student"].shape == x.shape and torch.equal(seen["teacher"], seen["student"])
    assert not torch.equal(seen["student"], x)  # cropped/flipped
    # Every augmented image is a shifted and possibly mirrored copy of its source, zero-padded.
    for a, src in zip(seen["student"], x):
        matches = [torch.equal(a, F.pad(img, (4, 4, 4, 4))[:, dy:dy + 32, dx:dx + 32])
                   for img in (src, src.flip(2)) for dy in range(9) for dx in range(9)]
        assert any(matches)


@pytest.mark.parametrize("loss", ["l1", "kl"])
def test_class_balanced_student_step_weights_samples_by_their_teacher_class(loss):
    # A batch the teacher puts mostly in one class: the balanced step's gradient is that of the per-sample loss
    # weighted by inverse class frequency (12 / (2 classes * 9) and 12 / (2 * 3)), and differs from the plain step's.
    cls = get_method("dfad")
    x = torch.randn(12, *INFO.input_shape)
    t_logits = torch.zeros(12, 10)
    t_logits[:9, 2], t_logits[9:, 5] = 4.0, 4.0  # 9 samples of class 2, 3 of class 5
    weights = torch.tensor([12 / 18] * 9 + [12 / 6] * 3)

    def student_grad(balance, by_hand=False):
        teacher, student = nets()
        cfg = resolve_config(cls, tiny_config("dfad", student_class_balance=balance, student_loss=loss,
                                              kd_temperature=2.0))
        m = cls(teacher, student, INFO, cfg)
        if by_hand:
            s_logits = m.student_train(x.contiguous(memory_format=m.memory_format)).float()
            ref = (losses.logits_l1(s_logits, t_logits, weights) if loss == "l1"
                   else losses.kd_kl(s_logits, t_logits, 2.0, weights))
            ref.backward()
        else:
            m.opt_student.step = lambda *a, **k: None  # keep the weights: compare gradients
            m.student_step(x, t_logits)
        return torch.cat([p.grad.flatten() for p in m.student.parameters()])

    plain, balanced = student_grad(False), student_grad(True)
    assert not torch.allclose(plain, balanced, rtol=1e-3, atol=1e-6)
    assert torch.allclose(balanced, student_grad(True, by_hand=True), rtol=1e-4, atol=1e-7)


def test_mixup_replaces_a_fraction_of_the_batch_by_convex_combinations():
    from dfkd.data.augment import mix_batch
    torch.manual_seed(0)
    x = torch.randn(8, 1, 4, 4)
    torch.manual_seed(1)
    y = mix_batch(x, 0.5)
    assert y.shape == x.shape and torch.equal(y[4:], x[4:])  # the rest untouched
    torch.manual_seed(1)
    partner = torch.randint(0, 8, (4,))
    lam = torch.rand(4, 1, 1, 1)
    assert torch.allclose(y[:4], lam * x[:4] + (1 - lam) * x[partner])
    assert torch.equal(mix_batch(x, 0.0), x)
    from dfkd import DfkdError
    with pytest.raises(DfkdError, match="augment_mixup"):
        resolve_config(get_method("dfad"), {"augment_mixup": 1.5})


def test_pre_dfkd_plus_is_pre_dfkd_with_in_range_outputs_when_nothing_else_applies():
    # LeNet teacher (no BatchNorm) on digits (no augmentation, no frame): the same run as pre-dfkd with sigmoid
    # outputs and pre-dfkd+'s adversarial weight, bit for bit.
    students = []
    plus_weight = get_method("pre-dfkd+").Config().w_adversarial
    as_plus = {"generator_options": {"output": "sigmoid"}, "w_adversarial": plus_weight}
    for name, extra in (("pre-dfkd", as_plus), ("pre-dfkd+", {})):
        teacher, student = nets()
        students.append(distill(teacher, student, name, tiny_config(name, **extra), info=INFO,
                                progress=False).student)
    assert all(torch.equal(a, b) for a, b in zip(students[0].state_dict().values(), students[1].state_dict().values()))


def test_pre_dfkd_plus_saves_the_config_it_ran_with(tmp_path):
    import yaml
    bn_teacher = create_model("cnn-bn", num_classes=10, in_channels=1, width=4)
    distill(bn_teacher, create_model("lenet5-half", num_classes=10, in_channels=1), "pre-dfkd+",
            tiny_config("pre-dfkd+", iterations=1), info=INFO, out_dir=tmp_path, progress=False,
            student_arch="lenet5-half")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())["config"]
    _, _, payload = load_model(tmp_path / "student.pt")
    assert saved["w_bn"] == payload["config"]["w_bn"] == 1.0  # the BN prior it switched on, not the 0 it started from
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "g_bn" in next(r for r in rows if r["kind"] == "train")


@pytest.mark.parametrize("name", list_methods())
def test_parts_table_drives_state_learning_rates_and_replay_bytes(name):
    teacher, student = nets(name=name)
    cls = get_method(name)
    m = cls(teacher, student, INFO, resolve_config(cls, tiny_config(name)))
    assert list(m.parts)[0] == "student" and m.parts["student"].module is student
    for part in m.parts.values():  # every optimizer's learning rate comes from a key of this method's config
        if part.optimizer is not None:
            assert hasattr(m.cfg, part.lr_key)
    m.lr_scale = {n: 0.5 for n in m.optimizers()}
    m.set_learning_rates(0)
    for n, opt in m.optimizers().items():
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * getattr(m.cfg, m.parts[n].lr_key))
    replay = [p for p in m.parts.values() if p.replay]
    expected = sum(t.numel() * t.element_size() for p in replay for t in (*p.module.parameters(), *p.module.buffers()))
    assert m.replay_memory_bytes() == expected
    assert bool(replay) == (name in ("pre-dfkd", "pre-dfkd+", "mb-dfkd", "adi", "cmi", "fast"))
    assert set(m.state_dict()["modules"]) == set(m.parts)
    m.close()


def test_pre_dfkd_vae_update_reuses_the_student_steps_teacher_labels():
    """Per PRE-DFKD iteration the teacher's forward sees, per student step, the replay latents' nudge (R) and the
    student batch (B + R); per VAE update the self-replay nudge (S), the self-replayed samples (S) and the
    reconstructions (N + S). Never the novel samples a second time. (The generator step's pass goes through
    the teacher's feature and head entry points, which this hook does not see.)"""
    teacher, student = nets()
    cls = get_method("pre-dfkd")
    m = cls(teacher, student, INFO, resolve_config(cls, tiny_config("pre-dfkd")))
    m.iteration(0)
    seen = []
    hook = teacher.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].shape[0]))
    m.iteration(1)
    hook.remove()
    b, r, s, n, steps, updates = 16, 2, 2, 8, 2, 2
    assert sum(seen) == steps * (r + b + r) + updates * (s + s + n + s)


def test_the_readme_example_method_is_one_class_and_runs(monkeypatch):
    """The README's "How a method is built" example: a new method from a new objective term list, registered
    by its decorator, runs through the loop and logs the added term."""
    import re
    from pathlib import Path
    from dfkd.methods import METHODS
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "register_method" in b)
    monkeypatch.setattr(METHODS, "_factories", dict(METHODS._factories))  # keep the registry as it was
    exec(compile(code, "README.md", "exec"), {})
    teacher, student = nets()
    res = distill(teacher, student, "dfad-tv", tiny_config("dfad"), info=INFO, progress=False)
    assert res.method.objective.term("tv") is not None and "dfad-tv" in METHODS


@pytest.mark.parametrize("name,steps,reuse,synthesised", [("dfad", 5, 2, 3), ("noise", 4, 4, 1), ("pre-dfkd", 5, 1, 5),
                                                          ("pre-dfkd", 5, 3, 2), ("mb-dfkd", 4, 2, 2),
                                                          ("dafl", 3, 2, 1), ("dafl", 3, 1, 2)])
def test_student_batch_reuse_synthesises_one_batch_per_reuse(name, steps, reuse, synthesised):
    """A novel batch serves ``student_batch_reuse`` student steps (DAFL's first is the generator step's batch);
    every step still updates the student, on the batch it was served."""
    teacher, student = nets(name=name)
    cfg = resolve_config(get_method(name), tiny_config(name, student_steps=steps, student_batch_reuse=reuse))
    m = get_method(name)(teacher, student, INFO, cfg)
    made, seen = [], []
    synthesize, step = m.synthesize, m.labelled_student_step
    m.synthesize = lambda n, generator=None: made.append(synthesize(n, generator)) or made[-1]
    m.labelled_student_step = lambda x, t=None: seen.append(x) or step(x, t)
    before = [p.clone() for p in m.student.parameters()]
    m.iteration(0)
    assert len(made) == synthesised and len(seen) == steps
    n = cfg.batch_size
    fresh = [k for k in range(steps) if k % reuse == 0 and not (name == "dafl" and k == 0)]
    for k, x in enumerate(seen):  # the novel part of step k is the batch synthesised at its block's start
        block = max((j for j in fresh if j <= k), default=None)
        if block is not None:
            assert torch.equal(x[:n], made[fresh.index(block)])
    assert any(not torch.equal(a, b) for a, b in zip(before, m.student.parameters()))


def test_pool_methods_refuse_batch_reuse():
    with pytest.raises(DfkdError, match="student_batch_reuse.*pool"):
        resolve_config(get_method("adi"), tiny_config("adi", student_batch_reuse=2))


@pytest.mark.parametrize("augment,teacher_passes", [(0, 2 + 1), (2, 4 + 1)])
def test_a_reused_batch_keeps_its_teacher_logits_unless_augmented(augment, teacher_passes):
    """DFAD, 4 student steps on 2 batches, then its generator step: the teacher labels each batch once, or each
    augmented view when the student sees augmented batches."""
    teacher, student = nets(name="dfad")
    cfg = resolve_config(get_method("dfad"), tiny_config("dfad", student_steps=4, student_batch_reuse=2,
                                                         augment_crop=augment))
    m = get_method("dfad")(teacher, student, INFO, cfg)
    calls = []
    handle = teacher.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    m.iteration(0)
    handle.remove()
    assert len(calls) == teacher_passes


def test_pre_dfkd_with_a_single_self_replayed_latent_stays_finite():
    """batch 8 -> one self-replayed sample per VAE update (and 4 per rank under a 2-process torchrun of batch 16):
    the latent nudge's variance term is undefined for one row and once turned every weight NaN."""
    teacher, student = nets(name="pre-dfkd")
    cfg = tiny_config("pre-dfkd", batch_size=8, iterations=3)
    res = distill(teacher, student, "pre-dfkd", cfg, info=INFO, progress=False)
    assert res.summary["rollbacks"] == 0
    assert all(torch.isfinite(p).all() for p in res.student.parameters())


def test_student_ema_is_the_weight_average_that_is_evaluated_and_saved(tmp_path):
    """student_ema = m: after each student step ema <- m * ema + (1 - m) * student; with one step from the initial
    weights w0 to w1, the saved student is m * w0 + (1 - m) * w1, and the evaluation scores it, not w1."""
    teacher, student = nets(name="dfad")
    w0 = {k: v.clone() for k, v in student.state_dict().items()}
    cfg = tiny_config("dfad", iterations=1, student_steps=1, student_ema=0.75)
    res = distill(teacher, student, "dfad", cfg, info=INFO, out_dir=tmp_path, progress=False,
                  student_arch="lenet5-half")
    w1 = res.method.student.state_dict()
    for k, v in res.student.state_dict().items():
        assert torch.allclose(v, 0.75 * w0[k] + 0.25 * w1[k].cpu(), atol=1e-6), k
        assert not torch.equal(v, w1[k].cpu())
    saved, _, _ = load_model(tmp_path / "student.pt")
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), res.student.state_dict().values()))
    assert all(p.requires_grad for p in res.student.parameters())
    assert "student_ema" in res.method.state_dict()["modules"]  # checkpointed, so a resumed run continues it
    with pytest.raises(DfkdError, match="student_ema"):
        resolve_config(get_method("dfad"), {"student_ema": 1.0})


@pytest.mark.parametrize("name", ["dafl", "dfad", "pre-dfkd", "pre-dfkd+", "mb-dfkd"])
def test_class_conditional_generation_balances_classes_and_trains_toward_them(name):
    """class_conditional: the generator reads [z, onehot(y)], y balanced per batch; class_ce pulls T(G(z, y)) to y."""
    cls = get_method(name)
    cfg = resolve_config(cls, tiny_config(name, class_conditional=True, w_class=1.0, batch_size=20))
    teacher, student = nets(name=name)
    m = cls(teacher, student, INFO, cfg)
    z, y = m.synth.inputs(20)
    assert z.shape == (20, cfg.latent_dim + 10) and torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 2))
    assert torch.equal(z[:, cfg.latent_dim:].argmax(1), y) and torch.equal(z[:, cfg.latent_dim:].sum(1), torch.ones(20))
    out = m.iteration(0)
    assert "g_class_ce" in out and torch.isfinite(out["g_class_ce"])
    x = m.sample_novel(20)
    assert x.shape == (20, 1, 32, 32)


@pytest.mark.parametrize("name", ["dfad", "pre-dfkd+"])
@pytest.mark.parametrize("key, term, log_name", [("w_tv", "total_variation", "g_tv"),
                                                 ("w_input_stats", "input_statistics", "g_input_stats")])
def test_image_priors_move_the_generator_output(name, key, term, log_name):
    """An image prior's weight > 0 adds it to the generator objective: it is logged, and one generator step on it
    alone (every other term off) lowers it on the same latents' images. TV_1(G(z)) smooths them;
    ||mean x|| + ||var x - 1|| pulls their pixels toward the normaliser's statistics (a fresh in-range generator
    draws near-uniform grey, far from it)."""
    from dfkd.terms import image_priors
    prior = getattr(image_priors, term)
    cls = get_method(name)
    off = dict(w_one_hot=0.0, w_info_entropy=0.0, w_activation=0.0, w_adversarial=0.0, w_bn=0.0, w_bn_auto=0.0)
    options = {"generator_options": {"output": "sigmoid"}} if term == "input_statistics" else {}
    cfg = resolve_config(cls, tiny_config(name, **{key: 1.0}, lr_generator=0.05, batch_size=16, **options,
                                          **{k: v for k, v in off.items() if hasattr(cls.Config, k)}))
    teacher, student = nets(name=name)
    m = cls(teacher, student, INFO, cfg)
    assert [t for t, w in m.generator_objective() if w > 0] == [term]
    z, _ = m.synth.inputs(16)
    with torch.no_grad():
        before = prior(m.synth.generator(z)).item()
    out, _, _ = m.synth.step()
    assert log_name in out and out[log_name].item() > 0
    if term == "input_statistics":
        assert out[log_name].item() > 0.5 and before > 0.5  # near-uniform grey: pixel variance far below 1
    with torch.no_grad():
        assert prior(m.synth.generator(z)).item() < before


@pytest.mark.parametrize("name", ["dafl", "pre-dfkd"])
def test_activation_prior_reads_the_named_teacher_layer(name):
    """activation_layer names the teacher module the activation prior reads (DAFL: LeNet-5's conv3 features,
    ``features.9``, 60 in LeNet-5-half) instead of the penultimate ones: the logged term is -mean|output| of that
    module on the step's batch, one generator step on it alone raises that module's mean activation, and the hook
    leaves with the method; a name the teacher does not have is refused with one line that names it."""
    cls = get_method(name)
    off = dict(w_one_hot=0.0, w_info_entropy=0.0, w_adversarial=0.0)
    cfg = resolve_config(cls, tiny_config(name, w_activation=1.0, activation_layer="features.9", lr_generator=0.05,
                                          batch_size=16, **{k: v for k, v in off.items() if hasattr(cls.Config, k)}))
    teacher, student = nets(name=name)
    layer = dict(teacher.named_modules())["features.9"]
    m = cls(teacher, student, INFO, cfg)
    assert [t for t, w in m.generator_objective() if w > 0] == ["activation"]
    assert m.objective.term("activation").needs == frozenset()  # no penultimate pass
    conv3 = lambda x: teacher.features[:10](x)  # (B, 60): the named layer's output
    z, _ = m.synth.inputs(16)
    with torch.no_grad():
        before = conv3(m.synth.generator(z)).abs().mean().item()
        penultimate_before = teacher.forward_features(m.synth.generator(z)).abs().mean().item()
    out, x, _ = m.synth.step()
    with torch.no_grad():
        assert out["g_activation"].item() == pytest.approx(-conv3(x).abs().mean().item(), rel=1e-5)  # its batch
        assert conv3(m.synth.generator(z)).abs().mean().item() > before
    assert penultimate_before != pytest.approx(before)  # a different layer from the default's
    assert len(layer._forward_hooks) == 1
    m.close()
    assert len(layer._forward_hooks) == 0
    with pytest.raises(DfkdError, match="activation_layer='features.99' is not a module of the teacher"):
        cls(teacher, student, INFO, resolve_config(cls, tiny_config(name, w_activation=1.0,
                                                                    activation_layer="features.99")))


@pytest.mark.parametrize("name", ["dafl", "pre-dfkd+"])
def test_boundary_prior_replaces_the_one_hot_prior_in_a_generator_step(name):
    """w_boundary > 0 adds the soft-target term (logged as g_boundary); one generator step on it alone lowers it on
    the same latents; boundary_mix outside [0, 0.5] is refused with a message naming it."""
    from dfkd.terms.teacher_priors import boundary
    cls = get_method(name)
    off = dict(w_one_hot=0.0, w_info_entropy=0.0, w_activation=0.0, w_adversarial=0.0, w_bn=0.0, w_bn_auto=0.0)
    cfg = resolve_config(cls, tiny_config(name, w_boundary=1.0, boundary_mix=0.3, lr_generator=0.05, batch_size=16,
                                          **{k: v for k, v in off.items() if hasattr(cls.Config, k)}))
    teacher, student = nets(name=name)
    m = cls(teacher, student, INFO, cfg)
    assert [t for t, w in m.generator_objective() if w > 0] == ["boundary"]
    z, _ = m.synth.inputs(16)
    with torch.no_grad():
        before = boundary(teacher(m.synth.generator(z)), 0.3).item()
    out, _, _ = m.synth.step()
    assert "g_boundary" in out and out["g_boundary"].item() > 0
    with torch.no_grad():
        assert boundary(teacher(m.synth.generator(z)), 0.3).item() < before
    with pytest.raises(DfkdError, match="boundary_mix"):
        resolve_config(cls, tiny_config(name, boundary_mix=0.7))


def test_each_method_declares_the_objective_weights_it_reads_and_refuses_the_others():
    """``objective_weights`` is what ``generator_objective`` reads: a weight in it reaches the objective, and one
    outside it (e.g. w_tv for CMI) is refused with a message naming it instead of being ignored."""
    import dataclasses

    from dfkd.methods.distill_config import GENERATOR_WEIGHTS
    for name in list_methods():
        cls = get_method(name)
        for key in GENERATOR_WEIGHTS:
            m = object.__new__(cls)
            m.cfg = dataclasses.replace(cls.Config(), **{key: 0.123})
            assert (0.123 in [w for _, w in m.generator_objective()]) == (key in cls.objective_weights), (name, key)
    with pytest.raises(DfkdError, match="'cmi' does not use w_tv, w_input_stats"):
        resolve_config(get_method("cmi"), tiny_config("cmi", w_tv=1.0, w_input_stats=1.0))
    cfg = resolve_config(get_method("cmi"), tiny_config("cmi"))
    cfg.w_tv = 1.0  # a config changed after it was resolved is checked again when the method is built
    teacher, student = nets(name="cmi")
    with pytest.raises(DfkdError, match="'cmi' does not use w_tv"):
        get_method("cmi")(teacher, student, INFO, cfg)


def test_class_conditional_is_refused_where_the_method_chooses_classes_itself():
    for name in ("adi", "cmi", "noise"):
        teacher, student = nets(name=name)
        cls = get_method(name)
        with pytest.raises(DfkdError, match="class_conditional"):
            cls(teacher, student, INFO, resolve_config(cls, tiny_config(name, class_conditional=True)))
    cls = get_method("dfad")  # targets without a conditional generator: the term has nothing to aim at
    teacher, student = nets(name="dfad")
    m = cls(teacher, student, INFO, resolve_config(cls, tiny_config("dfad", w_class=1.0)))
    with pytest.raises(DfkdError, match="target classes"):
        m.iteration(0)


def test_class_balanced_indices_take_the_classes_round_robin():
    from dfkd.methods.replay import class_balanced_indices
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    assert class_balanced_indices(labels, 3, 4).tolist() == [0, 3, 4]  # every class's first sample
    assert class_balanced_indices(labels, 5, 4).tolist() == [0, 3, 4, 1, 5]  # then the second of each
    assert class_balanced_indices(torch.zeros(4, dtype=torch.long), 2, 10).tolist() == [0, 1]  # one class: in order


class _PartialTeacher(torch.nn.Module):
    """A teacher whose class is the image's mean brightness bucket (0-9) scaled by 3 and clipped: classes 0-3
    of a skewed memory are frequent, the rest rare or absent."""

    def forward(self, x):
        c = (x.float().mean((1, 2, 3)) * 3).clamp(0, 9).long()
        return F.one_hot(c, 10).float() * 10


@pytest.mark.parametrize("name", ["pre-dfkd", "mb-dfkd"])
def test_replay_balance_replays_a_class_balanced_subset_of_more_draws(name, monkeypatch):
    cls = get_method(name)
    teacher, student = nets(name=name)
    cfg = resolve_config(cls, tiny_config(name, replay_balance=4))
    m = cls(teacher, student, INFO, cfg)
    if name == "mb-dfkd":  # an empty bank replays nothing, balanced or not
        assert m.replay_batch(8, 0).shape[0] == 0
        m.bank.push(torch.rand(8, *INFO.input_shape))
    drawn = []
    real_draw = m.draw_replay
    monkeypatch.setattr(m, "draw_replay", lambda n, g=None: drawn.append(n) or real_draw(n, g))
    x = m.replay_batch(8, 0)
    assert drawn == [32] and x.shape == (8, *INFO.input_shape)
    # The 8 kept are the round-robin subset of the 32 drawn, by the teacher's argmax.
    m.teacher = _PartialTeacher()
    pool = torch.cat([torch.full((20, *INFO.input_shape), 0.1), torch.full((4, *INFO.input_shape), 1.0),
                      torch.full((4, *INFO.input_shape), 2.0), torch.full((4, *INFO.input_shape), 3.0)])
    monkeypatch.setattr(m, "draw_replay", lambda n, g=None: pool[:n])
    kept = m.replay_batch(8, 0)
    assert sorted(_PartialTeacher()(kept).argmax(1).tolist()) == [0, 0, 3, 3, 6, 6, 9, 9]
    assert m.sample_replay(8).dtype == torch.float32 and m.sample_replay(8).shape[0] == 8
    assert resolve_config(cls, tiny_config(name)).replay_balance == 1  # off unless asked for
    with pytest.raises(DfkdError, match="replay_balance"):
        resolve_config(cls, {"replay_balance": 0})


@pytest.mark.parametrize("name", ["pre-dfkd", "mb-dfkd"])
def test_generator_warmup_adds_generator_updates_to_the_first_iteration_only(name, monkeypatch):
    cls = get_method(name)
    teacher, student = nets(name=name)
    m = cls(teacher, student, INFO, resolve_config(cls, tiny_config(name, generator_warmup=3, generator_steps=2)))
    calls = []
    real_step = m.generator_step
    monkeypatch.setattr(m, "generator_step", lambda: calls.append(1) or real_step())
    student_before = [p.detach().clone() for p in m.student.parameters()]
    m.iteration(0)
    assert len(calls) == 5  # 2 + 3, and the student still trained in that iteration
    assert any(not torch.equal(a, b) for a, b in zip(student_before, m.student.parameters()))
    m.iteration(1)
    assert len(calls) == 7
    assert resolve_config(cls, tiny_config(name)).generator_warmup == 0  # off unless asked for
    with pytest.raises(DfkdError, match="generator_warmup"):
        resolve_config(cls, {"generator_warmup": -1})


@pytest.mark.parametrize("name", ["pre-dfkd+", "dfad"])
def test_contrastive_term_in_a_generator_method_trains_its_head_and_keeps_only_what_its_memory_holds(name):
    """``w_contrastive`` in a generator method: the within-batch term (memory of 0 rows, the default) trains its
    projection head and keeps nothing; with a memory every generator update's B feature rows join it."""
    cls = get_method(name)
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    for bank_size, kept in ((0, 0), (64, 2 * TINY["batch_size"])):
        torch.manual_seed(0)
        teacher, student = create_model("cnn-bn", width=4, **kw), create_model("lenet5-half", **kw)
        cfg = resolve_config(cls, {**tiny_config(name), "w_contrastive": 0.8, "contrastive_bank_size": bank_size})
        m = cls(teacher, student, INFO, cfg)
        term = m.objective.term("contrastive")
        head = [p.detach().clone() for p in term.head.parameters()]
        out = m.iteration(0)
        m.iteration(1)
        assert torch.isfinite(out["g_contrastive"]) and out["g_contrastive"].item() > 0
        assert any(not torch.equal(a, b) for a, b in zip(head, term.head.parameters()))
        assert len(term.bank) == kept and term.last_features is None
    assert cls.Config().w_contrastive == 0 and cls.Config().contrastive_bank_size == 0  # off, and memory-free
    assert get_method("cmi").Config().contrastive_bank_size == 40960  # DataFree's memory stays CMI's


def test_fitted_prior_tracks_the_aggregate_posterior_moments():
    """fit_prior: m <- (1 - a) m + a mean_b mu_b, v <- (1 - a) v + a (var_b mu_b + mean_b sigma_b^2), from N(0, I)."""
    vae = ReplayVAE((1, 32, 32), latent_dim=3, width=4, fitted_prior=True)
    mu = torch.tensor([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0]])
    logvar = torch.log(torch.tensor([[1.0, 0.5, 2.0], [1.0, 0.5, 2.0]]))
    moments = vae.posterior_moments(mu, logvar)
    assert torch.allclose(moments, torch.tensor([[2.0, 2.0, 0.0], [2.0, 0.5, 2.0]]))
    vae.fit_prior(moments, 0.25)
    assert torch.allclose(vae.prior_mean, torch.tensor([0.5, 0.5, 0.0]))
    assert torch.allclose(vae.prior_var, torch.tensor([1.25, 0.875, 1.25]))
    for _ in range(200):
        vae.fit_prior(moments, 0.25)
    z = vae.sample_prior(20000, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), moments[0], atol=0.05) and torch.allclose(z.var(0), moments[1], atol=0.1)
    assert {"prior_mean", "prior_var"} <= set(vae.state_dict())  # checkpointed with the VAE
    assert "prior_mean" not in ReplayVAE((1, 32, 32), latent_dim=3, width=4).state_dict()  # standard: no buffers


def test_pre_dfkd_fitted_replay_prior_moves_with_the_vae_is_checkpointed_and_drawn_from(tmp_path):
    teacher, student = nets(name="pre-dfkd")
    cfg = tiny_config("pre-dfkd", replay_prior="fitted")
    res = distill(teacher, student, "pre-dfkd", cfg, info=INFO, out_dir=tmp_path, progress=False,
                  student_arch="lenet5-half")
    vae = res.method.vae
    assert not torch.equal(vae.prior_mean, torch.zeros(8)) and not torch.equal(vae.prior_var, torch.ones(8))
    assert "prior_mean" in res.method.state_dict()["modules"]["vae"]
    assert res.summary["rollbacks"] == 0 and all(torch.isfinite(p).all() for p in res.student.parameters())
    # Replay decodes latents of the fitted prior (without the nudge: exactly its draws).
    res.method.cfg.replay_nudge = False
    vae.prior_mean.fill_(5.0)
    vae.prior_var.fill_(0.25)
    z = res.method._latents(4000)
    assert abs(z.mean().item() - 5.0) < 0.05 and abs(z.var().item() - 0.25) < 0.02
    for key, value in (("replay_prior", "gaussian"), ("prior_momentum", 0.0)):
        with pytest.raises(DfkdError, match=key):
            resolve_config(get_method("pre-dfkd"), {key: value})


def fast_method(**kw):
    teacher, student = nets(name="fast")
    return get_method("fast")(teacher, student, INFO, resolve_config(get_method("fast"), tiny_config("fast", **kw)))


@pytest.mark.parametrize("meta_update", ["fomaml", "reptile"])
def test_fast_meta_generator_steps_on_the_rounds_gradients(meta_update):
    """FOMAML: the meta-generator's gradient is the sum of the fast copy's gradients over the inner steps; Reptile:
    67 x (meta - fast after the round). The fast copy starts each round from the meta-generator."""
    method = fast_method(meta_update=meta_update, generator_steps=3, iterations=4)
    meta = method.synth.generator
    before = [p.detach().clone() for p in meta.parameters()]
    inner, seen = [], {}
    minimize, meta_step = method.amp.minimize, method.meta_optimizer.step

    def recording_minimize(loss, optimizers):
        if not inner:  # the first inner step starts from the meta-generator's weights
            seen["start"] = [p.detach().clone() for p in method.fast.parameters()]
        minimize(loss, optimizers)
        inner.append([p.grad.clone() for p in method.fast.parameters()])

    def recording_step(*args, **kwargs):
        seen["grads"] = [p.grad.clone() for p in meta.parameters()]
        seen["fast"] = [p.detach().clone() for p in method.fast.parameters()]
        return meta_step(*args, **kwargs)

    method.amp.minimize, method.meta_optimizer.step = recording_minimize, recording_step
    method.iteration(0)
    assert len(inner) == 3 and all(torch.equal(a, b) for a, b in zip(seen["start"], before))
    if meta_update == "fomaml":
        expected = [sum(step[i] for step in inner) for i in range(len(before))]
    else:
        expected = [67 * (b - f) for b, f in zip(before, seen["fast"])]
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(seen["grads"], expected))
    assert any(not torch.equal(b, p) for b, p in zip(before, meta.parameters()))  # the meta step was taken
    assert all(p.grad is None for p in meta.parameters())


def test_fast_warmup_rounds_fill_the_pool_before_the_student_and_the_adversarial_term_start():
    method = fast_method(synthesis_warmup=2, iterations=5)
    student = [p.detach().clone() for p in method.student.parameters()]
    calls = []
    hook = method.student.register_forward_hook(lambda *_: calls.append(1))
    for it in range(2):
        out = method.iteration(it)
        assert "g_adversarial" not in out and "g_bn" in out and float(out["s_loss"]) == 0
        assert len(method.pool) == (it + 1) * 16
    assert not calls  # no student pass for the switched-off adversarial term either
    hook.remove()
    assert all(torch.equal(a, b) for a, b in zip(student, method.student.parameters()))
    out = method.iteration(2)
    assert "g_adversarial" in out and float(out["s_loss"]) > 0 and len(method.pool) == 48
    assert any(not torch.equal(a, b) for a, b in zip(student, method.student.parameters()))
    # the student's cosine schedule starts after the warm-up, at the full rate
    assert method.opt_student.param_groups[0]["lr"] == pytest.approx(method.cfg.lr_student)


def test_fast_resets_the_latent_projection_at_its_round_only():
    method = fast_method(reset_first_layer_at=2, iterations=4)
    project = method.synth.generator.project
    for it, reset in ((0, False), (1, True), (2, False)):
        with torch.no_grad():
            project.weight.fill_(5.0), project.bias.fill_(3.0)
        method.iteration(it)
        # after one meta step (lr 3e-3 x 2 steps): N(0, 0.02) and 0 when reset, else still near 5 and 3
        assert (project.weight.abs().max() < 0.2 and project.bias.abs().max() < 0.05) == reset


def config_notices(name, **kw):
    return resolve_config(get_method(name), tiny_config(name, **kw)).notices()


def test_a_reset_past_the_last_round_is_said_when_the_run_starts(tmp_path, capsys):
    """A Fast-DFKD reset beyond ``iterations`` would never fire: the run says so on stderr (once, at the start), and
    says nothing when the reset falls inside the run or is switched off."""
    assert not config_notices("fast", reset_first_layer_at=4, iterations=4)
    assert not config_notices("fast", reset_first_layer_at=0, iterations=4)
    teacher, student = nets(name="fast")
    distill(teacher, student, "fast", tiny_config("fast", reset_first_layer_at=9, iterations=4, synthesis_warmup=1),
            info=INFO, out_dir=tmp_path / "run", progress=False)
    err = capsys.readouterr().err
    assert err.count("dfkd: config 'reset_first_layer_at' (9) is past 'iterations' (4)") == 1
    assert "never reset" in err


def test_a_learning_rate_warmup_that_cannot_act_as_set_is_said():
    """A warm-up as long as the student's schedule (for Fast-DFKD: the rounds after its synthesis-only warm-up), or
    under a constant schedule, which has none."""
    notes = config_notices("pre-dfkd", warmup_iterations=3, iterations=3)
    assert len(notes) == 1 and "'warmup_iterations' (3) is not below the 3 scheduled iterations" in notes[0]
    assert not config_notices("pre-dfkd", warmup_iterations=2, iterations=3)
    notes = config_notices("fast", warmup_iterations=3, iterations=5, synthesis_warmup=2, reset_first_layer_at=0)
    assert len(notes) == 1 and "not below the 3 scheduled iterations" in notes[0]
    assert not config_notices("fast", warmup_iterations=2, iterations=5, synthesis_warmup=2,
                              reset_first_layer_at=0)
    notes = config_notices("pre-dfkd", warmup_iterations=2, iterations=3, schedule="constant")
    assert len(notes) == 1 and "applies to the cosine schedule only" in notes[0]


def test_bn_momentum_without_the_bn_prior_is_refused():
    teacher, student = nets(name="fast")
    with pytest.raises(DfkdError, match="bn_momentum=0.9 is a setting of the BatchNorm-statistics prior"):
        get_method("fast")(teacher, student, INFO, resolve_config(get_method("fast"), tiny_config("fast", w_bn=0.0)))
    method = get_method("dfad")(teacher, student, INFO, resolve_config(get_method("dfad"), tiny_config(
        "dfad", w_bn=1.0, bn_momentum=0.5)))
    assert "bn_momentum" in method.parts  # with the prior on, its EMA is checkpointed state
    method.iteration(0)
    assert bool(method.objective.term("bn").prior.ema_ready)  # a generator step folds its batch in


@pytest.mark.parametrize("kw,message", [
    ({"synthesis_warmup": 4, "iterations": 4}, "'synthesis_warmup' \\(4\\) must be below"),
    ({"meta_update": "maml"}, "'meta_update' must be one of fomaml, reptile")])
def test_fast_refuses_a_config_it_cannot_run(kw, message):
    with pytest.raises(DfkdError, match=message):
        resolve_config(get_method("fast"), tiny_config("fast", **kw))
