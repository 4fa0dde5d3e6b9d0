"""What every model family shares: the bundled hand's topology and template, loaded once."""

from __future__ import annotations

import functools

import torch

__all__ = ["default_topology", "default_template"]


@functools.lru_cache(maxsize=1)
def default_topology():
    """The mesh hierarchy of the bundled open hand (778 -> 389 -> 195 -> 98 -> 49 vertices)."""
    from handrecon.hand import load_hand_model
    from handrecon.mesh import load_topology

    return load_topology(load_hand_model("open"))


@functools.lru_cache(maxsize=1)
def default_template() -> torch.Tensor:
    """(778,3) the open hand in its relaxed pose, wrist keypoint at the origin."""
    from handrecon.hand import load_hand_model

    hand = load_hand_model("open")
    with torch.no_grad():
        rest = hand(hand.named_pose("relaxed")[None])
    return (rest.vertices[0] - rest.keypoints[0, 0]).clone()
