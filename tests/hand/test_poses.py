"""Anatomical angles, joint limits and named poses."""

import numpy as np
import pytest
import torch

from handrecon.hand import JOINT_LIMITS, POSE_NAMES, clamp_angles, load_hand_model, pose_to_angles
from handrecon.hand.poses import NAMED_POSE_ANGLES


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open")


def test_required_named_poses_exist_and_respect_limits():
    for name in ("flat", "fist", "point", "pinch", "ok", "spread", "thumbs_up"):
        assert name in POSE_NAMES
    for name, angles in NAMED_POSE_ANGLES.items():
        inside = (angles[1:] >= JOINT_LIMITS[1:, :, 0] - 1e-9) & (angles[1:] <= JOINT_LIMITS[1:, :, 1] + 1e-9)
        assert inside.all(), name


def test_angles_round_trip_through_axis_angle(hand):
    rng = np.random.default_rng(0)
    lo, hi = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
    angles = torch.tensor(rng.uniform(lo, hi, size=(20, 16, 3)), dtype=torch.float32)
    angles[:, 0] = 0.0
    back = pose_to_angles(hand.angles_to_pose(angles), hand.joint_frames)
    torch.testing.assert_close(back, angles, atol=1e-4, rtol=0)


def test_flexion_curls_towards_the_palm(hand):
    angles = torch.zeros(16, 3)
    angles[5, 0] = 1.2  # middle PIP
    tip = hand(hand.angles_to_pose(angles)[None]).keypoints[0, 12]
    assert tip[1] < -0.02  # palm side is -y in the model frame


def test_named_poses_look_like_their_names(hand):
    kp = {name: hand(hand.named_pose(name)[None]).keypoints[0] for name in POSE_NAMES}
    reach = lambda k, tip: float((k[tip] - k[0]).norm())  # noqa: E731
    assert float((kp["pinch"][4] - kp["pinch"][8]).norm()) < 0.025
    assert float((kp["ok"][4] - kp["ok"][8]).norm()) < 0.025
    for tip in (8, 12, 16, 20):
        assert reach(kp["fist"], tip) < 0.6 * reach(kp["flat"], tip)
    assert reach(kp["point"], 8) > 0.95 * reach(kp["flat"], 8)
    assert reach(kp["point"], 12) < 0.6 * reach(kp["flat"], 12)
    spread = float((kp["spread"][8] - kp["spread"][20]).norm())
    assert spread > 1.2 * float((kp["flat"][8] - kp["flat"][20]).norm())
    assert reach(kp["thumbs_up"], 4) > 0.9 * reach(kp["flat"], 4)


def test_clamp_angles():
    angles = torch.full((16, 3), 5.0)
    clamped = clamp_angles(angles)
    torch.testing.assert_close(clamped[1:], torch.tensor(JOINT_LIMITS[1:, :, 1], dtype=torch.float32))
    with pytest.raises(ValueError, match="angles"):
        clamp_angles(torch.zeros(15, 3))
