"""CMR's mesh decoder blocks: the Inception Spiral Module against Eq. 2 written out, the multi-scale decoder's
switches (ISM, multi-scale with coarse-to-fine fusion, self-regression), and the self-attention on the code."""

import pytest
import torch

from handrecon.models.common import default_topology
from handrecon.nn import InceptionSpiralModule, MultiScaleSpiralDecoder, SpiralConv, VectorSelfAttention
from handrecon.nn.ism import ism_channels




@pytest.fixture(scope="module")
def topo():
    return default_topology()


def spiral_conv_by_hand(x, indices, linear):
    """out[b, v] = W concat_s x[b, indices[v, s]] + b, vertex by vertex."""
    B, V, _ = x.shape
    out = torch.empty(B, V, linear.out_features)
    for v in range(V):
        out[:, v] = x[:, indices[v]].reshape(B, -1) @ linear.weight.T + linear.bias
    return out


def test_ism_is_eq_2(topo):
    spiral = topo.spiral(3, 27)
    ism = InceptionSpiralModule(6, 12, spiral)
    assert ism.lengths == (27, 18, 9)
    assert [b.out_channels for b in ism.branches] == [6, 3, 3] and ism.shortcut.out_channels == 12
    assert ism.shortcut.length == 1 and [b.length for b in ism.branches] == [27, 18, 9]
    with torch.no_grad():
        for p in ism.parameters():
            p.normal_()
    x = torch.randn(2, 98, 6)
    branches = [spiral_conv_by_hand(x, spiral[:, :n], b.linear) for b, n in zip(ism.branches, (27, 18, 9))]
    shortcut = spiral_conv_by_hand(x, spiral[:, :1], ism.shortcut.linear)
    expected = shortcut + torch.cat(branches, -1)
    assert torch.allclose(ism(x), expected, atol=1e-4)
    # the first spiral neighbour is the vertex itself: the shortcut is a per-vertex linear layer
    assert torch.allclose(ism.shortcut(x), x @ ism.shortcut.linear.weight.T + ism.shortcut.linear.bias, atol=1e-5)


def test_ism_channels_and_bad_arguments(topo):
    assert ism_channels(512) == (256, 128, 128) and ism_channels(6) == (4, 1, 1)
    with pytest.raises(ValueError, match="out_channels"):
        ism_channels(3)
    with pytest.raises(ValueError, match="lengths"):
        InceptionSpiralModule(4, 8, topo.spiral(3, 9), lengths=(12, 6, 3))
    with pytest.raises(ValueError, match="InceptionSpiralModule"):
        InceptionSpiralModule(4, 8, topo.spiral(3, 9))(torch.zeros(1, 98, 5))


SWITCHES = [(False, False, False), (True, False, False), (True, True, False), (True, True, True),
            (False, False, True), (False, True, True)]


@pytest.mark.parametrize("ism,multiscale,self_regression", SWITCHES)
def test_decoder_switches(topo, ism, multiscale, self_regression):
    spirals = [topo.spiral(level, 27) for level in range(4)]
    dec = MultiScaleSpiralDecoder(16, 49, (16, 12, 8, 8), spirals, topo.up, ism=ism, multiscale=multiscale,
                                  self_regression=self_regression)
    preds = dec(torch.randn(2, 16))
    expected = [778, 389, 195, 98] if multiscale else [778]
    assert [p.shape[1] for p in preds] == expected and all(p.shape[-1] == 3 for p in preds)
    assert all(isinstance(b, InceptionSpiralModule if ism else SpiralConv) for b in dec.blocks)
    assert len(dec.heads) == (4 if multiscale or self_regression else 1)
    # self-regression: every block after the first reads its predecessor's width + xyz
    widths = [b.in_channels for b in dec.blocks]
    assert widths == ([16, 19, 15, 11] if self_regression else [16, 16, 12, 8])
    sum(p.sum() for p in preds).backward()
    assert all(p.grad is not None for p in dec.parameters())


def test_coarse_to_fine_fusion(topo):
    spirals = [topo.spiral(level, 27) for level in range(4)]
    dec = MultiScaleSpiralDecoder(8, 49, (8, 8, 8, 8), spirals, topo.up).eval()
    heads = []
    hooks = [h.register_forward_hook(lambda m, i, o: heads.append(o)) for h in dec.heads]
    with torch.no_grad():
        fine_to_coarse = dec(torch.randn(1, 8))
    for h in hooks:
        h.remove()
    preds = fine_to_coarse[::-1]  # 98, 195, 389, 778
    assert torch.equal(preds[0], heads[0])  # the coarsest is the head's own prediction
    for i in range(1, 4):
        up = dec.ups[i](preds[i - 1])
        assert torch.allclose(preds[i], (heads[i] + up) / 2, atol=1e-6)


def test_self_attention():
    att = VectorSelfAttention(5)
    x = torch.randn(3, 5)
    assert torch.equal(att(x), x)  # gamma starts at 0: the identity
    with torch.no_grad():
        att.gamma.fill_(0.5)
    q, k, v = att.query(x), att.key(x), att.value(x)
    attention = torch.softmax(q[:, :, None] * k[:, None, :], -1)
    expected = x + 0.5 * torch.einsum("bij,bj->bi", attention, v)
    assert torch.allclose(att(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="VectorSelfAttention"):
        att(torch.zeros(3, 4))
