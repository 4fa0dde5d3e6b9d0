"""2D keypoint heads (MobRecon Table 2, Figure 4 (b)-(d)). Each maps encoder features to normalised
keypoints ``uv`` (B,N,2) in [0, 1] crop coordinates (``(u + 0.5) / S`` of input pixel ``u``).

- :class:`MapRegHead`: MapReg, a 1x1 conv to one map per keypoint on the skip-fused S/8 map, each map
  flattened and regressed to (u, v) by an MLP shared across keypoints (256 -> 128 -> 64 -> 2 at 128 px).
- :class:`HeatmapHead`: a 1x1 conv to heatmap logits, up-sampled to ``heatmap_size``; ``uv`` by soft-argmax.
- :class:`RegressionHead`: direct regression from globally pooled features (1x1 receptive field).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MapRegHead", "HeatmapHead", "RegressionHead", "soft_argmax"]


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(B,N,h,w) heatmap logits -> (B,N,2) expected (u, v) in [0, 1] (pixel centres at (i + 0.5) / w)."""
    B, N, h, w = logits.shape
    prob = logits.flatten(2).softmax(-1).view(B, N, h, w)
    xs = (torch.arange(w, device=logits.device, dtype=prob.dtype) + 0.5) / w
    ys = (torch.arange(h, device=logits.device, dtype=prob.dtype) + 0.5) / h
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)


class MapRegHead(nn.Module):
    """(B,C,h,w) map -> uv (B,N,2). ``hidden`` are the MLP widths; activations are ReLUs clipped at 4 and the
    layers have no bias, as in the authors' MapReg."""

    def __init__(self, in_channels: int, map_size: int, num_keypoints: int = 21, hidden=(128, 64)):
        super().__init__()
        self.map_size = int(map_size)
        self.reduce = nn.Conv2d(in_channels, num_keypoints, 1, bias=False)
        layers, width = [], self.map_size ** 2
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.Hardtanh(0.0, 4.0)]
            width = h
        layers.append(nn.Linear(width, 2, bias=False))
        self.mlp = nn.Sequential(*layers)

    def forward(self, maps: torch.Tensor) -> dict:
        if maps.shape[-2:] != (self.map_size, self.map_size):
            raise ValueError(f"MapRegHead: maps must be {self.map_size}x{self.map_size} (the model's input_size / 8), "
                             f"got {tuple(maps.shape[-2:])}")
        k = self.reduce(maps)
        return {"uv": self.mlp(k.flatten(2))}


class HeatmapHead(nn.Module):
    """(B,C,h,w) map -> heatmap logits (B,N,s,s) at ``heatmap_size`` and their soft-argmax uv."""

    def __init__(self, in_channels: int, heatmap_size: int, num_keypoints: int = 21):
        super().__init__()
        self.heatmap_size = int(heatmap_size)
        self.conv = nn.Conv2d(in_channels, num_keypoints, 1)

    def forward(self, maps: torch.Tensor) -> dict:
        logits = F.interpolate(self.conv(maps), size=(self.heatmap_size,) * 2, mode="bilinear", align_corners=False)
        return {"uv": soft_argmax(logits), "heatmaps": logits}


class RegressionHead(nn.Module):
    """Feature maps (B,C_i,h_i,w_i)... -> uv (B,N,2) from their concatenated global averages (Figure 4 (c)).

    ``in_channels`` is the sum of the maps' channels (MobRecon passes the bottleneck and the S/8 map, so the
    encoder's up path stays in use)."""

    def __init__(self, in_channels: int, num_keypoints: int = 21, hidden: int = 256):
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2 * self.num_keypoints))

    def forward(self, *features: torch.Tensor) -> dict:
        pooled = torch.cat([f.mean((2, 3)) for f in features], 1)
        return {"uv": self.mlp(pooled).view(-1, self.num_keypoints, 2)}
