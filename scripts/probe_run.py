"""Research probe of a finished run (not part of the library): what its samples and its replay memory are, and
how much one generator state teaches.

1. The run's saved samples (``samples.pt``) as the teacher sees them (``dfkd.engine.samples.sample_statistics``;
   runs since 2026-11-26 also keep these in summary.json).
2. For PRE-DFKD runs, the final VAE on 256 fresh novel samples: their reconstructions (encode, decode a
   posterior sample) and decodes of the prior z ~ N(0, I), which is what replay draws (before its nudge).
3. Loads the final generator (``state.pt``) and teacher, then trains a fresh student of the run's
architecture for ``--steps`` steps of ``batch_size`` samples drawn from that frozen generator (train mode, as in
the run), by default with the suites' student recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, cosine
to 0, L_S = mean |S(x) - T(x)| (``--optimizer adam``, ``--lr``, ``--loss kl --temperature T`` for
KL(softmax(T/τ) || softmax(S/τ)) τ², ``--student ARCH``; ``--skip-vae`` skips part 2). Prints the student's
test accuracy and its argmax agreement with the teacher on the last batch four times. fp32, for comparisons
between runs, not for speed.

    DFKD_DATA=../shared/data python scripts/probe_run.py RUN_DIR TEACHER.pt [--steps 400]
"""
from __future__ import annotations

import argparse
import os
import torch

from dfkd.checkpoint import load_model
from dfkd.data import load_dataset
from dfkd.engine.samples import sample_statistics
from dfkd.evaluate import accuracy
from dfkd.models import create_model
from dfkd.models.generator import create_generator
from dfkd.engine.loop import resolve_config
from dfkd.methods import get_method
from dfkd.methods.pre_dfkd import replay_vae
from student_recipe import add_recipe_arguments, train_student


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("teacher")
    add_recipe_arguments(p, steps=400)
    p.add_argument("--student", help="student architecture (default: the run's)")
    p.add_argument("--skip-vae", action="store_true")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    teacher, info = load_model(args.teacher)[:2]
    teacher.eval()
    state = torch.load(os.path.join(args.run, "state.pt"), map_location="cpu", weights_only=True)
    resolved, cfg = state["resolved"], state["resolved"]["config"]
    samples = torch.load(os.path.join(args.run, "samples.pt"), map_location="cpu", weights_only=True)
    for name, images in samples.items():
        print(name, sample_statistics(teacher, info, images))
    gen = create_generator(cfg["generator"], latent_dim=cfg["latent_dim"], out_shape=info.input_shape,
                           width=cfg["generator_width"], info=info, **cfg["generator_options"])
    gen.load_state_dict(state["method_state"]["modules"]["generator"])
    gen.train()  # as the run draws its batches: BatchNorm on batch statistics
    student = create_model(args.student or resolved["student_arch"], num_classes=info.num_classes,
                           in_channels=info.in_channels, input_size=info.image_size)
    data = load_dataset(info.name, os.environ.get("DFKD_DATA"))

    def draw():
        with torch.no_grad():
            x = gen(gen.sample_latent(cfg["batch_size"]))
            return x, teacher(x)

    def report(step, loss, s, t, seconds):
        agree = (s.argmax(1) == t.argmax(1)).float().mean().item()
        acc = accuracy(student, data.test_images, data.test_labels, info)["accuracy"]
        print(f"step {step}: loss {loss:.3f}, agreement {agree:.2f}, test {acc:.2f} % ({seconds:.0f} s)", flush=True)

    train_student(student, draw, args, report)

    torch.manual_seed(args.seed)  # after the training, so that it is what it was without this part
    if "vae" in state["method_state"]["modules"] and not args.skip_vae:
        method = get_method(resolved["method"])
        vae = replay_vae(info, resolve_config(method, cfg))  # the VAE the run built (its frame, its prior)
        vae.load_state_dict(state["method_state"]["modules"]["vae"])
        vae.eval()

        def to_uint8(x: torch.Tensor) -> torch.Tensor:
            return (info.denormalize(x.float()) * 255).round().to(torch.uint8)

        with torch.no_grad():
            x = gen(gen.sample_latent(256))
            x_hat, mu, logvar = vae(x)
            prior = vae.decode(torch.randn(256, cfg["vae_latent_dim"]))
        print(f"vae posterior: mean |mu| {mu.abs().mean():.2f}, std of mu {mu.std():.2f}, "
              f"mean sigma {(0.5 * logvar).exp().mean():.3f}")
        for name, images in (("vae novel", x), ("vae reconstruction", x_hat), ("vae prior decode", prior)):
            print(name, sample_statistics(teacher, info, to_uint8(images)))


if __name__ == "__main__":
    main()
