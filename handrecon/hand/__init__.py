"""The articulated hand: the open hand model, MANO loading, keypoint names, joint limits, named poses.

>>> from handrecon.hand import load_hand_model
>>> hand = load_hand_model("open")
>>> out = hand(hand.named_pose("fist")[None])
>>> out.vertices.shape, out.keypoints.shape
(torch.Size([1, 778, 3]), torch.Size([1, 21, 3]))
"""

from handrecon.hand import keypoints, lbs
from handrecon.hand.keypoints import JOINT_NAMES, KEYPOINT_NAMES
from handrecon.hand.model import HandModel, HandOutput, load_hand_model
from handrecon.hand.poses import (
    JOINT_LIMITS,
    POSE_NAMES,
    angles_to_pose,
    clamp_angles,
    joint_frames,
    pose_to_angles,
)

__all__ = [
    "HandModel",
    "HandOutput",
    "load_hand_model",
    "JOINT_NAMES",
    "KEYPOINT_NAMES",
    "JOINT_LIMITS",
    "POSE_NAMES",
    "angles_to_pose",
    "pose_to_angles",
    "clamp_angles",
    "joint_frames",
    "keypoints",
    "lbs",
]
