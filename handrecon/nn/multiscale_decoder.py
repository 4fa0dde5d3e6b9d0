"""CMR's spiral mesh decoder (Figure 5; Tables 1 and 7): an image code -> vertices at every hierarchy level.

A linear layer maps the code (B,D) to the coarsest level's features (B,V_L,C_0) (49 x 512 in CMR). Each of
the up-blocks, coarse to fine, up-samples x2 (:class:`handrecon.nn.MeshUpsample`), applies a spiral
convolution and a ReLU; three mechanisms can each be switched on or off:

- ``ism``: the convolution is the :class:`handrecon.nn.InceptionSpiralModule`; off = SpiralConv++ over the whole
  spiral (the YoutubeHand-style baseline of Table 1 / the first row of Table 7).
- ``multiscale``: a spiral-convolution head predicts xyz at every level, and each prediction is averaged with the
  up-sampled prediction of the level below (coarse-to-fine fusion); the decoder returns every level's
  prediction, for a loss per level. Off = one head at the finest level.
- ``self_regression``: each level's prediction is concatenated to that level's features before the next block
  (so the next block reads C + 3 channels). It needs a head per level, which it adds even without
  ``multiscale`` (then the per-level predictions are only fed back, neither fused nor returned).

With all three on (CMR's model) and widths (512, 256, 128, 64) at 98, 195, 389 and 778 vertices.
"""

from __future__ import annotations

import torch
from torch import nn

from handrecon.nn.ism import InceptionSpiralModule
from handrecon.nn.spiral import MeshUpsample, SpiralConv

__all__ = ["MultiScaleSpiralDecoder"]


class MultiScaleSpiralDecoder(nn.Module):
    """(B,D) code -> list of (B,V_l,3) predictions, finest first (only the finest without ``multiscale``).

    Args:
        in_features: D, width of the code.
        num_coarse: V_L, vertices of the coarsest level (49).
        channels: widths after each up-block, coarse to fine, e.g. (512, 256, 128, 64); the linear layer makes
            ``channels[0]`` features per coarse vertex.
        spirals: spiral indices per level, fine to coarse (level 0 first); ``len(channels)`` of them.
        ups: up-sampling matrices per level, fine to coarse (``topology.up``); ``up[l]`` is (V_l, V_{l+1}).
        ism, multiscale, self_regression: the switches of Table 7 (see the module docstring).
        out_channels: 3 (xyz).
    """

    def __init__(self, in_features: int, num_coarse: int, channels, spirals, ups, ism: bool = True,
                 multiscale: bool = True, self_regression: bool = True, out_channels: int = 3):
        super().__init__()
        n = len(channels)
        if n < 1 or len(spirals) < n or len(ups) < n:
            raise ValueError(f"{n} up-blocks need {n} spiral levels and up matrices, got {len(spirals)} and {len(ups)}")
        self.num_coarse = int(num_coarse)
        self.channels = tuple(int(c) for c in channels)
        self.multiscale, self.self_regression = bool(multiscale), bool(self_regression)
        self.fc = nn.Linear(in_features, self.num_coarse * self.channels[0])
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleList()
        per_level_heads = self.multiscale or self.self_regression
        width = self.channels[0]
        for i, c in enumerate(self.channels):
            level = n - 1 - i  # the fine level this block produces
            self.ups.append(MeshUpsample(ups[level]))
            self.blocks.append(InceptionSpiralModule(width, c, spirals[level]) if ism
                               else SpiralConv(width, c, spirals[level]))
            if per_level_heads or level == 0:
                self.heads.append(SpiralConv(c, out_channels, spirals[level]))
            width = c + (out_channels if self.self_regression else 0)

    def forward(self, code: torch.Tensor) -> list[torch.Tensor]:
        x = self.fc(code).view(code.shape[0], self.num_coarse, self.channels[0])
        preds: list[torch.Tensor] = []
        last = len(self.blocks) - 1
        for i, (up, block) in enumerate(zip(self.ups, self.blocks)):
            x = torch.relu(block(up(x)))
            if len(self.heads) == len(self.blocks):
                pred = self.heads[i](x)
                if self.multiscale and preds:
                    pred = (pred + up(preds[-1])) / 2
                preds.append(pred)
                if self.self_regression and i < last:
                    x = torch.cat([x, pred], -1)
            elif i == last:
                preds.append(self.heads[0](x))
        return preds[::-1] if self.multiscale else preds[-1:]
