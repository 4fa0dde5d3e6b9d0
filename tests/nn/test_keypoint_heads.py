"""2D heads, pose pooling and lifting: soft-argmax finds a peak, pose pooling reads the feature under a keypoint
(align_corners=False: uv (i + 0.5) / w is the centre of cell i), PVL is the matrix product of Eq. 4."""

import pytest
import torch

from handrecon.nn import (GlobalLifting, HeatmapHead, MapRegHead, PoseVertexLifting, RegressionHead,
                          SilhouetteHead, pose_pooling, soft_argmax)


def test_soft_argmax_of_a_sharp_peak_is_its_cell_centre():
    logits = torch.full((1, 2, 8, 8), -50.0)
    logits[0, 0, 3, 5] = 50.0
    logits[0, 1, 7, 0] = 50.0
    uv = soft_argmax(logits)
    torch.testing.assert_close(uv[0], torch.tensor([[5.5 / 8, 3.5 / 8], [0.5 / 8, 7.5 / 8]]))


def test_pose_pooling_reads_the_cell_under_each_keypoint():
    feats = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    uv = torch.tensor([[[0.5 / 4, 0.5 / 4], [2.5 / 4, 1.5 / 4], [2.0 / 4, 1.5 / 4]]])
    out = pose_pooling(feats, uv)
    assert out.shape == (1, 3, 2)
    torch.testing.assert_close(out[0, 0], feats[0, :, 0, 0])
    torch.testing.assert_close(out[0, 1], feats[0, :, 1, 2])
    torch.testing.assert_close(out[0, 2], (feats[0, :, 1, 1] + feats[0, :, 1, 2]) / 2)  # halfway: bilinear
    far = pose_pooling(feats, torch.tensor([[[5.0, -3.0]]]))  # clamped to the crop
    torch.testing.assert_close(far[0, 0], feats[0, :, 0, 3])


def test_pvl_and_global_lifting():
    pvl = PoseVertexLifting(49)
    assert torch.all(pvl.matrix == 0.01) and pvl.matrix.shape == (49, 21)
    f = torch.randn(2, 21, 8)
    torch.testing.assert_close(pvl(f), 0.01 * f.sum(1, keepdim=True).expand(2, 49, 8))
    g = GlobalLifting(256, 49, 256)
    assert sum(p.numel() for p in g.parameters()) == 256 * 49 * 256 + 49 * 256  # the paper's 3.2 M
    assert g(torch.randn(2, 256, 4, 4)).shape == (2, 49, 256)


@pytest.mark.parametrize("size", [8, 16])
def test_heads_shapes(size):
    maps = torch.randn(2, 24, size, size)
    assert MapRegHead(24, size)(maps)["uv"].shape == (2, 21, 2)
    h = HeatmapHead(24, 4 * size)(maps)
    assert h["heatmaps"].shape == (2, 21, 4 * size, 4 * size) and h["uv"].shape == (2, 21, 2)
    assert RegressionHead(24 + 32)(maps, torch.randn(2, 32, 2, 2))["uv"].shape == (2, 21, 2)
    sil = SilhouetteHead(24, 16, 4 * size)(maps, torch.randn(2, 16, 2 * size, 2 * size))
    assert sil.shape == (2, 1, 4 * size, 4 * size)
    with pytest.raises(ValueError, match="MapRegHead: maps must be"):
        MapRegHead(24, size)(torch.randn(1, 24, size + 1, size + 1))
