"""DenseStack, MobRecon's 2D encoder (section 3.1, Figure 3), laid out as the authors' code builds it.

Input (B,3,S,S), S divisible by 32 (128 in the paper). Stem: 3x3 stride-2 conv (S/2, C/2 channels), a
separable unit (C), space-to-depth (S/4, 4C) and a 1x1 reduce to C. Then two stacked hourglasses of
densely connected separable units with squeeze-excitation:

- *down*: dense block (x2 channels) + SE, pool -> S/8; dense block (x2) + SE, pool -> S/16; dense block (x2)
  [+ SE in stack 2], pool -> S/32 with 8C channels; stack 2 adds two more dense blocks there (the bottleneck).
- *up*: shrink (separable units) + SE, nearest x2, add the S/16 skip; shrink + SE, x2, add the S/8 skip;
  shrink to ``maps_channels`` + SE at S/8. Stack 1 is then up-sampled x2 (bilinear), remapped by a 1x1 conv,
  concatenated with the stem features and reduced back to C for stack 2.

Outputs: ``maps`` = stack 2's skip-fused S/8 map (MapReg reads it), ``latent`` = stack 2's S/32 bottleneck (8C
channels; pose pooling reads it) and ``fine`` = the S/4 stem features (the silhouette head reads them).

Unlike the authors' code, stack 1 does not build the SE and bottleneck blocks its forward pass never uses
(3.1 M dead parameters there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from handrecon.nn.mobile import SeparableUnit, SpaceToDepthConv, SqueezeExcitation, conv_bn_relu
from handrecon.nn.normalization import check_image_batch

__all__ = ["DenseStackConfig", "DenseStack", "DenseBlock", "DenseHourglass"]


@dataclass(frozen=True)
class DenseStackConfig:
    """channels: C, the width at S/4 (128 in the paper); maps_channels: width of the S/8 output map (24)."""

    channels: int = 128
    maps_channels: int = 24


class DenseBlock(nn.Module):
    """Densely connected separable units: each unit sees the concatenation of the input and all earlier outputs.

    ``growth`` = channels each unit adds (as fractions of C_in). ``keep_input=False`` drops the block input
    from the output (the bottleneck blocks keep the width instead of growing it).
    (B,C_in,H,W) -> (B,C_out,H,W) with C_out = C_in [if keep_input] + sum(growth) x C_in.
    """

    def __init__(self, in_channels: int, growth: tuple, keep_input: bool = True):
        super().__init__()
        self.units = nn.ModuleList()
        width = in_channels
        outs = []
        for g in growth:
            c = int(round(in_channels * g))
            self.units.append(SeparableUnit(width, c))
            width += c
            outs.append(c)
        self.keep_input = keep_input
        self.out_channels = (in_channels if keep_input else 0) + sum(outs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for unit in self.units:
            feats.append(unit(torch.cat(feats, 1) if len(feats) > 1 else x))
        return torch.cat(feats if self.keep_input else feats[1:], 1)


def _shrink(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(SeparableUnit(in_channels, out_channels), SeparableUnit(out_channels, out_channels,
                                                                                 num_depthwise=2))


class DenseHourglass(nn.Module):
    """One stack: (B,C,H,W) -> (maps (B,maps_channels,H/2,W/2), bottleneck (B,8C,H/16,W/16)).

    ``bottleneck=True`` (stack 2) adds SE after the third dense block and two width-keeping dense blocks at
    H/16; otherwise (stack 1) the third block's pooled output feeds the up path directly.
    """

    def __init__(self, channels: int, maps_channels: int, bottleneck: bool):
        super().__init__()
        c = channels
        self.down1 = DenseBlock(c, (0.5, 0.5))                   # c -> 2c
        self.se1 = SqueezeExcitation(2 * c)
        self.down2 = DenseBlock(2 * c, (0.25,) * 4)              # 2c -> 4c
        self.se2 = SqueezeExcitation(4 * c)
        self.down3 = DenseBlock(4 * c, (0.25,) * 4)              # 4c -> 8c
        self.bottleneck = bottleneck
        if bottleneck:
            self.se3 = SqueezeExcitation(8 * c)
            self.mid = nn.Sequential(DenseBlock(8 * c, (0.75, 0.25), keep_input=False),
                                     DenseBlock(8 * c, (0.75, 0.25), keep_input=False))
        self.up1 = _shrink(8 * c, 4 * c)
        self.se4 = SqueezeExcitation(4 * c)
        self.up2 = _shrink(4 * c, 2 * c)
        self.se5 = SqueezeExcitation(2 * c)
        self.up3 = nn.Sequential(SeparableUnit(2 * c, 2 * c), SeparableUnit(2 * c, maps_channels, num_depthwise=2))
        self.se6 = SqueezeExcitation(maps_channels)

    def forward(self, x: torch.Tensor):
        d1 = F.avg_pool2d(self.se1(self.down1(x)), 2)
        d2 = F.avg_pool2d(self.se2(self.down2(d1)), 2)
        d3 = self.down3(d2)
        if self.bottleneck:
            d3 = self.mid(F.avg_pool2d(self.se3(d3), 2))
        else:
            d3 = F.avg_pool2d(d3, 2)
        u1 = F.interpolate(self.se4(self.up1(d3)), scale_factor=2.0, mode="nearest") + d2
        u2 = F.interpolate(self.se5(self.up2(u1)), scale_factor=2.0, mode="nearest") + d1
        return self.se6(self.up3(u2)), d3


class DenseStack(nn.Module):
    """MobRecon's DenseStack encoder: (B,3,S,S) normalised image -> dict ``maps`` (B,24,S/8,S/8), ``latent``
    (B,8C,S/32,S/32), ``fine`` (B,C,S/4,S/4)."""

    def __init__(self, config: DenseStackConfig | None = None):
        super().__init__()
        cfg = config or DenseStackConfig()
        c, m = int(cfg.channels), int(cfg.maps_channels)
        self.stem = nn.Sequential(conv_bn_relu(3, c // 2, 3, stride=2), SeparableUnit(c // 2, c))
        # space-to-depth + 1x1 reduce, computed as one 2x2 stride-2 convolution (same weights and numbers)
        self.stem_reduce = nn.Sequential(SpaceToDepthConv(4 * c, c), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.stack1 = DenseHourglass(c, m, bottleneck=False)
        self.stack1_remap = conv_bn_relu(m, m)
        self.stack2_input = conv_bn_relu(m + c, c)
        self.stack2 = DenseHourglass(c, m, bottleneck=True)
        self.maps_channels, self.latent_channels, self.fine_channels = m, 8 * c, c

    def forward(self, x: torch.Tensor) -> dict:
        check_image_batch(x, "x", multiple=32)
        fine = self.stem_reduce(self.stem(x))
        maps1, _ = self.stack1(fine)
        maps1 = F.interpolate(maps1, scale_factor=2.0, mode="bilinear", align_corners=True)
        maps, latent = self.stack2(self.stack2_input(torch.cat([self.stack1_remap(maps1), fine], 1)))
        return {"maps": maps, "latent": latent, "fine": fine}
