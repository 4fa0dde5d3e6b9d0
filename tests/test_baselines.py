"""The constant-hand baseline: zero error when the labels are that hand under any similarity transform (the
metrics are Procrustes-aligned), a positive error otherwise, and a clear error without labels."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from handrecon.baselines import constant_hand_scores
from handrecon.hand import load_hand_model
from handrecon.hand.lbs import axis_angle_to_matrix


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open")


def _labels(hand, pose, n=4, seed=0):
    """The hand in ``pose`` under n random rotations, scales and translations."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = hand(hand.named_pose(pose)[None])
    R = axis_angle_to_matrix(torch.randn(n, 3, generator=g)).double()
    s = (0.8 + 0.4 * torch.rand(n, 1, 1, generator=g)).double()
    t = torch.randn(n, 1, 3, generator=g).double()

    def place(x):
        return (s * x.double() @ R.transpose(1, 2) + t).numpy()

    return SimpleNamespace(xyz=place(out.keypoints[0]), verts=place(out.vertices[0]))


def test_constant_hand_scores_zero_on_itself_and_positive_on_another_pose(hand):
    same = constant_hand_scores(_labels(hand, "fist"), "fist", hand_model=hand)
    assert same["samples"] == 4
    assert same["pa_mpjpe_mm"] < 1e-4 and same["pa_mpvpe_mm"] < 1e-4
    assert same["pa_f5"] == pytest.approx(1.0) and same["pa_f15"] == pytest.approx(1.0)
    other = constant_hand_scores(_labels(hand, "fist"), "flat", hand_model=hand)
    assert other["pa_mpjpe_mm"] > 10 and other["pa_f5"] < 0.9
    assert np.isfinite(list(other.values())).all()


def test_constant_hand_scores_needs_labels():
    with pytest.raises(ValueError, match="no keypoint and vertex labels"):
        constant_hand_scores(SimpleNamespace(xyz=None, verts=None, root="data/x"))
