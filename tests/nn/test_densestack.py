"""DenseStack: output shapes, every parameter used, and the size of the authors' encoder (no dead blocks)."""

import pytest
import torch

from handrecon.nn import DenseStack, DenseStackConfig, count_complexity




def test_shapes_and_used_parameters():
    enc = DenseStack(DenseStackConfig(channels=32, maps_channels=8))
    out = enc(torch.randn(2, 3, 64, 64))
    assert out["maps"].shape == (2, 8, 8, 8) and out["latent"].shape == (2, 256, 2, 2)
    assert out["fine"].shape == (2, 32, 16, 16)
    assert (enc.maps_channels, enc.latent_channels, enc.fine_channels) == (8, 256, 32)
    sum(v.mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_paper_sized_encoder():
    enc = DenseStack()
    enc.input_size = 128
    c = count_complexity(enc)
    # the authors' encoder minus its 3.08 M dead parameters; its convolutions are 415 M of the model's 440 M
    assert c["unused"] == [] and 7.6e6 < c["parameters"] < 7.9e6 and 405e6 < c["macs"] < 425e6


def test_input_checks_name_x():
    enc = DenseStack(DenseStackConfig(channels=16, maps_channels=8))
    for bad in (torch.zeros(3, 64, 64), torch.zeros(1, 1, 64, 64), torch.zeros(1, 3, 60, 64)):
        with pytest.raises(ValueError, match="x"):
            enc(bad)


def test_space_to_depth_is_pixel_unshuffle():
    from torch.nn import functional as F

    from handrecon.nn.mobile import space_to_depth

    x = torch.randn(2, 3, 8, 6)
    assert torch.equal(space_to_depth(x), F.pixel_unshuffle(x, 2))


def test_space_to_depth_conv_is_space_to_depth_then_1x1():
    from handrecon.nn.mobile import SpaceToDepthConv, space_to_depth

    conv = SpaceToDepthConv(12, 5)
    x = torch.randn(2, 3, 8, 6)
    expected = torch.nn.functional.conv2d(space_to_depth(x), conv.weight)
    torch.testing.assert_close(conv(x), expected)
    assert conv.weight.shape == (5, 12, 1, 1)  # the parameters of the 1x1 convolution it replaces
