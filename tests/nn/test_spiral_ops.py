"""Spiral operators against their definitions, written out with loops, and the mesh up-sampling against the
topology's sparse matrices."""

import pytest
import torch

from handrecon.models.common import default_topology
from handrecon.nn import DSConv, MeshUpsample, SpiralConv, SpiralDecoder


@pytest.fixture(scope="module")
def topo():
    return default_topology()


def test_dsconv_is_depthwise_then_pointwise(topo):
    torch.manual_seed(0)
    idx = topo.spiral(3, 9)
    conv = DSConv(5, 7, idx)
    x = torch.randn(2, idx.shape[0], 5)
    out = conv(x)
    W = conv.pointwise.weight
    for v in (0, 17, idx.shape[0] - 1):
        d = sum(conv.depthwise[s] * x[:, idx[v, s]] for s in range(9))  # (B,5), per channel
        torch.testing.assert_close(out[:, v], d @ W.T, rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in conv.parameters()) == 9 * 5 + 5 * 7


@pytest.mark.filterwarnings("ignore::FutureWarning")  # the exporter's own deprecation notices
@pytest.mark.parametrize("out_channels", [3, 40])
def test_dsconv_onnx_export_gives_the_same_numbers_fused_or_not(topo, tmp_path, out_channels):
    """Narrow DSConvs export as one matrix product with the fused weight (no element-wise ReduceSum pass);
    wider ones keep the two steps. Either way ONNX Runtime reproduces PyTorch."""
    import onnx
    import onnxruntime as ort

    from handrecon.nn.spiral import EXPORT_FUSED_MAX_OUT, spiral_gather

    torch.manual_seed(0)
    idx = topo.spiral(1, 9)
    conv = DSConv(16, out_channels, idx).eval()
    x = torch.randn(2, idx.shape[0], 16)
    torch.testing.assert_close(spiral_gather(x, conv.indices).flatten(2) @ conv.fused_weight().T, conv(x),
                               rtol=1e-5, atol=1e-5)
    path = tmp_path / "dsconv.onnx"
    torch.onnx.export(conv, (x,), str(path), dynamo=True, input_names=["x"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    fused = out_channels <= EXPORT_FUSED_MAX_OUT
    assert ("ReduceSum" not in ops) == fused, ops
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), conv(x).detach(), rtol=1e-4, atol=1e-5)


def test_spiralconv_is_a_linear_map_of_the_concatenated_spiral(topo):
    torch.manual_seed(0)
    idx = topo.spiral(2, 9)
    conv = SpiralConv(4, 3, idx)
    torch.nn.init.normal_(conv.linear.bias)
    x = torch.randn(2, idx.shape[0], 4)
    out = conv(x)
    for v in (0, 50):
        cat = torch.cat([x[:, idx[v, s]] for s in range(9)], -1)
        torch.testing.assert_close(out[:, v], conv.linear(cat))
    assert sum(p.numel() for p in conv.parameters()) == 9 * 4 * 3 + 3


@pytest.mark.parametrize("level", range(4))
def test_mesh_upsample_equals_the_sparse_matrix(topo, level):
    up = MeshUpsample(topo.up[level])
    x = torch.randn(3, topo.num_vertices[level + 1], 6)
    expected = torch.stack([torch.sparse.mm(topo.up[level], xb) for xb in x])
    torch.testing.assert_close(up(x), expected, rtol=1e-5, atol=1e-6)


def test_decoder_goes_from_the_coarsest_to_the_full_mesh(topo):
    spirals = [topo.spiral(level, 9) for level in range(4)]
    dec = SpiralDecoder(16, (16, 8, 8, 4), spirals, topo.up)
    out = dec(torch.randn(2, 49, 16))
    assert out.shape == (2, 778, 3)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.parameters())


def test_bad_inputs_name_what_is_wrong(topo):
    conv = DSConv(4, 4, topo.spiral(3, 9))
    with pytest.raises(ValueError, match=r"DSConv: x must have shape \(B, 98, 4\)"):
        conv(torch.zeros(1, 97, 4))
    with pytest.raises(ValueError, match="indices"):
        DSConv(4, 4, torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match="MeshUpsample"):
        MeshUpsample(topo.up[0])(torch.zeros(1, 10, 3))
    with pytest.raises(ValueError, match="4 up-blocks need 4 spiral levels"):
        SpiralDecoder(8, (8, 8, 8, 8), [topo.spiral(0, 9)], topo.up)
