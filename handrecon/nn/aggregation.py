"""CMR's semantic aggregation of joint heatmaps (section 3.1, Figure 3, Tables 2-3).

A group is a set of keypoints whose heatmaps are summed into one map (a "sub-pose"). The group kinds, from
:mod:`handrecon.hand.keypoints`:

- ``part``: the four keypoints of each finger (5 maps);
- ``level``: the five keypoints of each kinematic level, finger bases ... tips (4 maps);
- ``tip``: each pair of fingertips 4, 8, 12, 16, 20 (10 maps);
- ``all``: every keypoint in one map (``sum(H_p)`` of Table 2).

:class:`HeatmapAggregation` maps heatmaps (B,21,h,w) to (B,G,h,w) group sums, in the order the kinds are given.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from handrecon.hand.keypoints import FINGER_KEYPOINTS, FINGERS, KEYPOINT_LEVELS, NUM_KEYPOINTS, TIP_KEYPOINTS

__all__ = ["GROUP_KINDS", "aggregation_groups", "HeatmapAggregation"]

GROUP_KINDS = ("part", "level", "tip", "all")


def aggregation_groups(kinds) -> list[tuple[int, ...]]:
    """Keypoint index groups of the given kinds (see the module docstring), in order."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    groups: list[tuple[int, ...]] = []
    for kind in kinds:
        if kind == "part":
            groups += [tuple(FINGER_KEYPOINTS[f]) for f in FINGERS]
        elif kind == "level":
            groups += [tuple(level) for level in KEYPOINT_LEVELS]
        elif kind == "tip":
            groups += list(itertools.combinations(TIP_KEYPOINTS, 2))
        elif kind == "all":
            groups.append(tuple(range(NUM_KEYPOINTS)))
        else:
            raise ValueError(f"group kind must be one of {GROUP_KINDS}, got {kind!r}")
    return groups


class HeatmapAggregation(nn.Module):
    """(B,N,h,w) heatmaps -> (B,G,h,w): map g is the sum of the heatmaps of group g.

    Computed as one matrix product with a fixed (G,N) 0/1 membership matrix (a non-persistent buffer).
    """

    def __init__(self, kinds, num_keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        self.groups = aggregation_groups(kinds)
        if not self.groups:
            raise ValueError("HeatmapAggregation needs at least one group kind")
        member = torch.zeros(len(self.groups), num_keypoints)
        for g, group in enumerate(self.groups):
            member[g, list(group)] = 1.0
        self.register_buffer("membership", member, persistent=False)

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        if heatmaps.ndim != 4 or heatmaps.shape[1] != self.membership.shape[1]:
            raise ValueError(f"HeatmapAggregation: heatmaps must have shape (B, {self.membership.shape[1]}, h, w), "
                             f"got {tuple(heatmaps.shape)}")
        return torch.einsum("gn,bnhw->bghw", self.membership.to(heatmaps.dtype), heatmaps)
