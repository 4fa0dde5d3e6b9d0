"""2D-to-3D feature lifting (MobRecon section 3.2): from encoder features to features on the coarsest mesh.

- :func:`pose_pooling`: grid-sample a feature map at the 2D keypoints (Eq. 3) -> pose-aligned features.
- :class:`PoseVertexLifting` (PVL, Eq. 4): a learnable (V_mini, N) matrix mapping N pose-aligned features to
  V_mini vertex features.
- :class:`GlobalLifting`: the baseline of Table 2: global average pooling and a fully connected layer to
  V_mini x C features (3.2 M parameters at C = 256, V_mini = 49).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["pose_pooling", "PoseVertexLifting", "GlobalLifting"]


def pose_pooling(features: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """(B,C,h,w) features sampled bilinearly at uv (B,N,2) in [0, 1] crop coordinates -> (B,N,C).

    uv is clamped to the crop; ``align_corners=False`` because uv = 0 and 1 are the crop's outer edges, and
    border padding so that a keypoint on the edge reads the edge cell rather than a blend with zeros.
    """
    grid = (uv.clamp(0.0, 1.0) * 2.0 - 1.0).unsqueeze(2)  # (B,N,1,2)
    out = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[..., 0].transpose(1, 2)


class PoseVertexLifting(nn.Module):
    """PVL: (B,N,C) pose-aligned features -> (B,V,C) = M @ F, M (V,N) initialised to ``init`` (0.01)."""

    def __init__(self, num_vertices: int, num_keypoints: int = 21, init: float = 0.01):
        super().__init__()
        self.matrix = nn.Parameter(torch.full((num_vertices, num_keypoints), float(init)))

    def forward(self, pose_features: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.matrix, pose_features)


class GlobalLifting(nn.Module):
    """(B,C,h,w) features -> (B,V,C_out) by global average pooling and one linear layer."""

    def __init__(self, in_channels: int, num_vertices: int, out_channels: int):
        super().__init__()
        self.num_vertices, self.out_channels = int(num_vertices), int(out_channels)
        self.linear = nn.Linear(in_channels, self.num_vertices * self.out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.mean((2, 3))).view(-1, self.num_vertices, self.out_channels)
