"""A tiny mesh regressor for tests and smoke runs: a small CNN, global pooling, a linear map to the coarsest
mesh level (49 vertices) plus the template, up-sampled through the hierarchy, and a 2D keypoint head.

It is not one of the papers' models; it exercises the whole engine (data, losses, trainer, evaluator,
export) in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from handrecon.models.registry import register_model

__all__ = ["TinyConfig", "TinyMeshNet"]


@dataclass(frozen=True)
class TinyConfig:
    """input_size: image side; channels: conv widths (each conv halves the resolution)."""

    input_size: int = 64
    channels: tuple = (16, 32, 64, 64)


def _template_and_up():
    from handrecon.hand import load_hand_model
    from handrecon.mesh import load_topology

    hand = load_hand_model("open")
    topo = load_topology(hand)
    with torch.no_grad():
        rest = hand(hand.named_pose("relaxed")[None])
    template = rest.vertices[0] - rest.keypoints[0, 0]
    return template, topo


class TinyMeshNet(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        layers, c_in = [], 3
        for c in config.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        template, topo = _template_and_up()
        levels = [template]
        for down in topo.down:
            levels.append(torch.sparse.mm(down, levels[-1]))
        self.num_levels = len(levels)
        self.register_buffer("coarse_template", levels[-1].clone())
        for i, up in enumerate(topo.up):
            self.register_buffer(f"up{i}", up.to_dense())
        self.to_coarse = nn.Linear(c_in, levels[-1].numel())
        self.to_keypoints = nn.Linear(c_in, 42)
        nn.init.zeros_(self.to_coarse.weight)
        nn.init.zeros_(self.to_coarse.bias)

    def forward(self, image: torch.Tensor) -> dict:
        """image (B,3,S,S) -> dict with ``vertices_rel`` (B,778,3), ``vertices_l1..l4`` and
        ``keypoints_2d`` (B,21,2) in [0,1]."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
        feat = self.encoder(image)
        B = feat.shape[0]
        coarse = self.coarse_template + 0.05 * self.to_coarse(feat).view(B, -1, 3)
        out = {f"vertices_l{self.num_levels - 1}": coarse}
        current = coarse
        for level in range(self.num_levels - 2, -1, -1):
            current = getattr(self, f"up{level}") @ current
            out["vertices_rel" if level == 0 else f"vertices_l{level}"] = current
        out["keypoints_2d"] = torch.sigmoid(self.to_keypoints(feat)).view(B, 21, 2)
        return out


register_model("tiny", TinyMeshNet, TinyConfig, "tiny CNN -> coarse mesh + 2D keypoints (tests, smoke runs)")
