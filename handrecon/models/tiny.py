"""A tiny mesh regressor for tests and smoke runs: a small CNN, global pooling, a linear map to the coarsest
mesh level (49 vertices) plus the template, up-sampled through the hierarchy, and a 2D keypoint head.

It is not one of the papers' models; it exercises the whole engine (data, losses, trainer, evaluator,
export) in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from handrecon.nn.normalization import ImageNormalization, check_image_batch
from handrecon.models.common import default_template, default_topology
from handrecon.models.registry import register_model

__all__ = ["TinyConfig", "TinyMeshNet"]


@dataclass(frozen=True)
class TinyConfig:
    """input_size: image side; channels: conv widths (each conv halves the resolution)."""

    input_size: int = 64
    channels: tuple = (16, 32, 64, 64)


class TinyMeshNet(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.input_size = int(config.input_size)
        self.normalize = ImageNormalization()
        layers, c_in = [], 3
        for c in config.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        template, topo = default_template(), default_topology()
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
        """image (B,3,S,S) -> dict with ``vertices`` (B,778,3), ``vertices_l1..l4`` and
        ``keypoints_2d`` (B,21,2) in [0,1]."""
        check_image_batch(image)
        feat = self.encoder(self.normalize(image))
        B = feat.shape[0]
        coarse = self.coarse_template + 0.05 * self.to_coarse(feat).view(B, -1, 3)
        out = {f"vertices_l{self.num_levels - 1}": coarse}
        current = coarse
        for level in range(self.num_levels - 2, -1, -1):
            current = getattr(self, f"up{level}") @ current
            out["vertices" if level == 0 else f"vertices_l{level}"] = current
        size = image.shape[-1]
        out["keypoints_2d"] = torch.sigmoid(self.to_keypoints(feat)).view(B, 21, 2) * size - 0.5  # input pixels
        return out


register_model("tiny", TinyMeshNet, TinyConfig, "tiny CNN -> coarse mesh + 2D keypoints (tests, smoke runs)")
