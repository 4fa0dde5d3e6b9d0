import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from handrecon.nn.ghoststack import GhostModule, GhostStack, GhostStackConfig




@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GhostStack()


@pytest.mark.parametrize("side,batch", [(128, 1), (128, 3), (64, 1), (64, 3)])
def test_output_shapes(model, side, batch):
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 3, side, side))
    assert set(out) == {"maps", "latent", "fine"}
    assert out["maps"].shape == (batch, model.maps_channels, side // 8, side // 8)
    assert out["latent"].shape == (batch, model.latent_channels, side // 32, side // 32)
    assert out["fine"].shape == (batch, model.fine_channels, side // 4, side // 4)
    assert (model.maps_channels, model.latent_channels, model.fine_channels) == (24, 1024, 64)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_every_parameter_gets_a_gradient(model):
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(torch.randn(2, 3, 128, 128))
    sum(v.mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"
    model.zero_grad(set_to_none=True)


def test_size_matches_the_paper(model):
    params = sum(p.numel() for p in model.parameters())
    assert abs(params / 4.90e6 - 1) <= 0.03, params
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, 128, 128))
    macs = fc.get_total_flops() / 2
    assert abs(macs / 98e6 - 1) <= 0.04, macs


def test_eval_is_deterministic_and_per_sample(model):
    model.eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        a, b, single = model(x), model(x), model(x[1:2])
    for key in a:
        assert torch.equal(a[key], b[key])
        torch.testing.assert_close(a[key][1:2], single[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 128, 128), (1, 1, 128, 128), (1, 4, 128, 128), (1, 3, 100, 100),
                                   (1, 3, 128, 120), (1, 3, 0, 0)])
def test_wrong_input_is_refused(model, shape):
    with pytest.raises(ValueError, match=r"\bx\b.*multiples of 32"):
        model(torch.zeros(shape))


def test_config_overrides_and_bad_widths():
    small = GhostStack(GhostStackConfig(stem_channels=8, fine_channels=16, widths=(16, 32, 64), latent_channels=64,
                                        latent_blocks=1, maps_channels=8)).eval()
    with torch.no_grad():
        out = small(torch.randn(1, 3, 64, 96))
    assert out["maps"].shape == (1, 8, 8, 12) and out["latent"].shape == (1, 64, 2, 3)
    assert out["fine"].shape == (1, 16, 16, 24)
    with pytest.raises(ValueError, match="widths"):
        GhostStack(GhostStackConfig(widths=(96, 192)))
    with pytest.raises(ValueError, match="divisible by ratio"):
        GhostModule(8, 7)
