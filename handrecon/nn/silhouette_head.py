"""A light silhouette head for the mobile encoders (our addition to MobRecon, so that CMR's 1D root
registration can run on it): the S/8 map up-sampled x2 and fused with the S/4 stem features, one separable
unit, a 1x1 conv to logits, bilinear up-sampling to the output size."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from handrecon.nn.mobile import SeparableUnit

__all__ = ["SilhouetteHead"]


class SilhouetteHead(nn.Module):
    """maps (B,C_m,h,w), fine (B,C_f,2h,2w) -> silhouette logits (B,1,size,size)."""

    def __init__(self, maps_channels: int, fine_channels: int, size: int, hidden: int = 32):
        super().__init__()
        self.size = int(size)
        self.fuse = SeparableUnit(maps_channels + fine_channels, hidden)
        self.out = nn.Conv2d(hidden, 1, 1)

    def forward(self, maps: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(maps, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.out(self.fuse(torch.cat([up, fine], 1)))
        return F.interpolate(logits, size=(self.size, self.size), mode="bilinear", align_corners=False)
