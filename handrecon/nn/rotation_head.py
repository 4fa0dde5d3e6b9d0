"""A global-rotation head (our addition to MobRecon): the hand's orientation in the camera frame, so the mesh
decoder can work in the hand's own frame.

The mesh decoders of the papers predict root-relative vertices directly in the camera frame, so every
orientation of the same hand is a different output to learn, and early in training the decoder averages over
orientations (the mesh collapses towards a blob). With this head the decoder predicts the hand in the hand
model's canonical frame and the model rotates it: ``vertices = R @ canonical``. ``R`` is regressed by an MLP
from a feature vector (MobRecon feeds it the flattened bottleneck map and the 2D keypoints: the orientation is in
where things are, which a global average would discard) as the continuous 6D representation of Zhou et al. (CVPR
2019): two 3-vectors turned into a rotation by Gram-Schmidt (:func:`rotation_6d_to_matrix`). The last layer
starts at zero with the identity as its bias, so a new head starts at ``R = I``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["rotation_6d_to_matrix", "GlobalRotationHead"]

_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # written out: ONNX has no cross-product operator
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -1)


def rotation_6d_to_matrix(d6: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(..., 6) two 3-vectors (the rotation's first two columns, unnormalised) -> (..., 3, 3) rotation matrices.

    Gram-Schmidt: ``c1 = a / |a|``, ``c2`` = the part of ``b`` orthogonal to ``c1``, normalised, ``c3 = c1 x c2``;
    the result has ``c1, c2, c3`` as columns, determinant +1. ``eps`` keeps a degenerate input finite.
    """
    if not isinstance(d6, torch.Tensor) or d6.ndim < 1 or d6.shape[-1] != 6:
        raise ValueError(f"d6 must be a tensor of shape (..., 6), got "
                         f"{tuple(d6.shape) if isinstance(d6, torch.Tensor) else type(d6).__name__}")
    a, b = d6[..., :3], d6[..., 3:]
    c1 = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b - (c1 * b).sum(-1, keepdim=True) * c1
    c2 = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    return torch.stack([c1, c2, _cross(c1, c2)], -1)


class GlobalRotationHead(nn.Module):
    """features (B,F) -> rotation matrices (B,3,3): an MLP to the 6D representation."""

    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__()
        self.in_features = int(in_features)
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 6))
        nn.init.zeros_(self.mlp[-1].weight)
        with torch.no_grad():
            self.mlp[-1].bias.copy_(torch.tensor(_IDENTITY_6D))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.in_features:
            raise ValueError(f"features must have shape (B, {self.in_features}), got {tuple(features.shape)}")
        return rotation_6d_to_matrix(self.mlp(features))
