"""Generators: the registered architectures and their options (output range, the official PRE-DFKD generator's
spectral norm / init / BatchNorm eps), and how many novel batches a method synthesises with batch reuse."""
import pytest
import torch

from dfkd.data import dataset_info
from dfkd.errors import DfkdError
from dfkd.models.generator import create_generator

FMNIST = dataset_info("fashion-mnist")


def _bounds(info):
    """Per-channel range of a normalised image whose pixels lie in [0, 1]."""
    mean, std = torch.tensor(info.mean).view(1, -1, 1, 1), torch.tensor(info.std).view(1, -1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


@pytest.mark.parametrize("name", ["dcgan", "pre-dfkd"])
def test_sigmoid_output_stays_inside_the_normalisers_bounds(name):
    torch.manual_seed(0)
    g = create_generator(name, latent_dim=8, out_shape=(1, 32, 32), width=4, info=FMNIST, output="sigmoid")
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(20)  # saturating weights: the raw outputs are huge, the images must stay valid
        x = g(torch.randn(64, 8) * 10)
    lo, hi = _bounds(FMNIST)
    assert (x >= lo - 1e-5).all() and (x <= hi + 1e-5).all()
    assert x.min() < lo + 0.05 and x.max() > hi - 0.05  # and the range is reached: it is not squashed
    # tanh_bn does not hold samples inside the range (why sigmoid exists): standardised batches leave it.
    torch.manual_seed(0)
    g = create_generator(name, latent_dim=8, out_shape=(1, 32, 32), width=4, info=FMNIST)
    x = g(torch.randn(64, 8))
    assert x.min() < lo.min() and abs(x.mean()) < 1e-3


def test_official_pre_dfkd_generator_options():
    torch.manual_seed(0)
    g = create_generator("pre-dfkd", latent_dim=8, out_shape=(3, 32, 32), width=8)
    convs = [g.block1[0], g.block2[0], g.to_image]
    for conv in convs:
        w0 = conv.parametrizations.weight.original  # U(-0.08, 0.08) init, zero bias
        assert w0.abs().max() <= 0.08 and w0.abs().max() > 0.07 and (conv.bias == 0).all()
    assert g.project.weight.abs().max() <= 0.08 and (g.project.bias == 0).all()
    assert g.block1[1].eps == g.block2[1].eps == 0.8 and g.bn0.eps == 1e-5
    for _ in range(30):  # power iterations run in training-mode forwards
        g(torch.randn(4, 8))
    for conv in convs:  # spectral norm: the effective weight's largest singular value is 1
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert abs(sigma - 1) < 0.02
    plain = create_generator("dcgan", latent_dim=8, out_shape=(3, 32, 32), width=8)
    assert not hasattr(plain.block1[0], "parametrizations") and plain.block1[1].eps == 1e-5
    assert plain.block1[0].weight.abs().max() > 0.08  # PyTorch's default init, wider than 0.08 at fan-in 144
    # The options compose: the official generator with CMI's output.
    g = create_generator("pre-dfkd", latent_dim=8, out_shape=(1, 32, 32), width=4, info=FMNIST, output="sigmoid",
                         bn_eps=1e-5)
    assert g.block1[1].eps == 1e-5 and hasattr(g.to_image, "parametrizations")


def test_generator_option_errors_name_the_generator():
    with pytest.raises(DfkdError, match="cannot build generator 'pre-dfkd'.*bn_eps"):
        create_generator("pre-dfkd", latent_dim=8, out_shape=(1, 32, 32), bn_eps=0)
    with pytest.raises(DfkdError, match="cannot build generator 'dcgan'.*colour"):
        create_generator("dcgan", latent_dim=8, out_shape=(1, 32, 32), colour=True)


def test_border_is_black_and_the_inside_is_synthesised():
    torch.manual_seed(0)
    g = create_generator("pre-dfkd", latent_dim=8, out_shape=(1, 32, 32), width=4, info=FMNIST, output="sigmoid",
                         border=2)
    x = g(torch.randn(16, 8))
    black = (0 - FMNIST.mean[0]) / FMNIST.std[0]  # pixel 0, normalised: what zero padding gives real images
    inner = torch.zeros_like(x, dtype=torch.bool)
    inner[..., 2:-2, 2:-2] = True
    assert x.shape == (16, 1, 32, 32) and torch.allclose(x[~inner], torch.tensor(black))
    assert (x[inner] > black + 1e-3).all()  # sigmoid > 0 inside
    x.sum().backward()  # gradients reach the generator through the padded image
    assert g.project.weight.grad.abs().sum() > 0


def test_a_linear_output_draws_the_same_frame():
    """A VAE decoder (linear output) with a border draws exactly the frame the sigmoid generator draws."""
    from dfkd.replay.vae import ReplayVAE
    vae = ReplayVAE((1, 32, 32), latent_dim=8, width=4, border=2, mean=FMNIST.mean, std=FMNIST.std)
    x = vae.decode(torch.randn(16, 8))
    black = (0 - FMNIST.mean[0]) / FMNIST.std[0]
    assert x.shape == (16, 1, 32, 32) and torch.allclose(x[..., :2, :], torch.tensor(black))
    assert torch.allclose(x[..., :, -2:], torch.tensor(black))
    assert x[..., 2:-2, 2:-2].std() > 0  # the inside is drawn
    assert ReplayVAE((1, 32, 32), latent_dim=8, width=4).decode(torch.randn(16, 8))[..., :2, :].std() > 0


def test_border_errors():
    with pytest.raises(DfkdError, match="border needs a sigmoid or linear output"):
        create_generator("dcgan", latent_dim=8, out_shape=(1, 32, 32), border=2)
    with pytest.raises(DfkdError, match="divisible by 4"):
        create_generator("dcgan", latent_dim=8, out_shape=(1, 32, 32), border=1, output="sigmoid")
