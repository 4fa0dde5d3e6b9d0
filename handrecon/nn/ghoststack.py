"""GhostStack: MobRecon's light stacked 2D encoder, built from GhostNet's ghost modules.

MobRecon (Chen et al., CVPR 2022, section 3.1, Figure 3) encodes the image with a *stacked encoding network*:
two cascaded hourglass-like groups of encoding blocks, the first followed by an up-sampling module whose output
is fused back into the second. The paper gives two block alternatives: DenseStack (dense blocks with SE) and
GhostStack, "where cheap operations can produce ghost features based on primary features" (GhostNet, Han et
al., CVPR 2020). The authors released DenseStack only; this file designs GhostStack from the paper, with the
same layout and interface as :mod:`handrecon.nn.densestack`, sized to the paper's numbers (Table 1: 5.0 M
parameters, 96.2 M Mult-Adds at 128x128; Table 4: 5.3 M / 123.5 M for the whole model with DSConv).

Building blocks
    * :class:`GhostModule` - a primary pointwise conv makes ``out/ratio`` channels, a cheap depthwise 3x3 conv
      on those makes the remaining ("ghost") channels; the two are concatenated. It replaces every pointwise
      conv of a plain depthwise-separable design, roughly halving its cost.
    * :class:`SqueezeExcite` - GhostNet's SE (global pool, 1x1 reduce by 4, ReLU, 1x1 expand, hard sigmoid).
    * :class:`GhostBottleneck` - GhostNet's unit: expanding ghost module, optional stride-2 depthwise conv, SE,
      projecting ghost module (no activation), plus an identity or depthwise+pointwise shortcut.
    * :class:`GhostRefine` - the up-path unit (DenseStack's "thrink"): a ghost module changes the width, then
      a residual ghost bottleneck with SE refines it.
    * :class:`GhostHourglass` - one stack: three stride-2 ghost bottlenecks (H/4 -> H/8 -> H/16 -> H/32), an
      optional run of bottlenecks at H/32 (the second stack's latent), and an up path that refines, up-samples
      (nearest) and *adds* the encoder feature of the same resolution, ending in a refine to the map width at
      H/8.

Layout at 128x128 with the default config (channels @ side; "GB a-m-b s2" = ghost bottleneck a -> mid m -> b,
stride 2; "refine a-b" = ghost module a -> b then residual GB b-b-b; every GB and refine has SE)::

    stem     3x3 conv s2                 3 -> 16   @64
             depthwise 3x3 + ghost 1x1  16 -> 32   @64
             space-to-depth             32 -> 128  @32
             ghost 1x1 reduce          128 -> 64   @32   = "fine"
    stack 1  GB 64-96-96 s2     -> d1   96 @16
             GB 96-192-192 s2   -> d2  192 @8
             GB 192-512-512 s2  -> d3  512 @4
             refine 512-192 @4,  nearest x2, + d2   -> 192 @8
             refine 192-96 @8,   nearest x2, + d1   ->  96 @16
             refine 96-24 @16,   bilinear x2        ->  24 @32
    fusion   1x1 conv 24 -> 24 @32, concat with "fine", ghost 1x1 88 -> 64 @32
    stack 2  as stack 1 down to d3 (512 @4), then
             GB 512-1024-1024, GB 1024-1024-1024 @4                = "latent" (1024 @4)
             refine 1024-192 @4 ... as stack 1 ... refine 96-24     = "maps"   (24 @16, no up-sample)

That is 4.81 M parameters and 97.1 M multiply-adds at 128x128 (torch's flop counter), against the paper's
5.0 M / 96.2 M. Compared with the released DenseStack the high-resolution layers are narrower (16/32 channels
at H/2, 64 at H/4, 96 at H/8 rather than 64/128, 128, 256), every pointwise conv is a ghost module, and
downsampling is GhostNet's stride-2 bottleneck rather than a dense block at full resolution followed by average
pooling; that is where the four-fold saving in Mult-Adds comes from. As the paper's numbers require, most
parameters sit where they are cheap: about 65 % in convs at H/32, where a parameter costs 16 Mult-Adds at
128x128, and 29 % in SE layers, whose parameters cost one Mult-Add each. The 4x4 latent keeps DenseStack's
1024 channels (two ghost bottlenecks, like DenseStack's two extra dense blocks at that level in its second
stack), so the rest of MobRecon (pose pooling, MapReg, PVL, DSConv) is the same for both encoders. Nothing
is built that the forward pass does not use (the released DenseStack's first stack builds three modules that
it never calls).

Outputs (dict): ``maps`` (B, maps_channels, H/8, W/8), skip-fused, read by MapReg; ``latent``
(B, latent_channels, H/32, W/32), the bottleneck used for pose pooling; ``fine`` (B, fine_channels, H/4, W/4),
the stem feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from handrecon.nn.mobile import SpaceToDepthConv

__all__ = [
    "GhostStackConfig",
    "GhostStack",
    "GhostModule",
    "SqueezeExcite",
    "GhostBottleneck",
    "GhostRefine",
    "GhostHourglass",
    "conv_bn",
]


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
            relu: bool = True) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm (+ ReLU). (B, in, H, W) -> (B, out, H/stride, W/stride)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GhostModule(nn.Module):
    """Ghost module: a primary 1x1 conv makes ``out_channels / ratio`` intrinsic channels; a cheap depthwise
    ``dw_size`` conv makes ``ratio - 1`` ghost channels from each intrinsic one; both are concatenated.

    (B, in_channels, H, W) -> (B, out_channels, H, W). ``out_channels`` must be divisible by ``ratio`` so that
    every ghost channel is used. With ``space_to_depth_input`` the module reads (B, in_channels / 4, 2H, 2W)
    through space-to-depth (:class:`handrecon.nn.mobile.SpaceToDepthConv`).
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: int = 2, dw_size: int = 3, relu: bool = True,
                 space_to_depth_input: bool = False):
        super().__init__()
        if ratio < 2 or out_channels % ratio:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by ratio ({ratio}), ratio >= 2")
        primary = out_channels // ratio
        self.out_channels = out_channels
        self.primary = conv_bn(in_channels, primary, 1, relu=relu)
        if space_to_depth_input:  # the primary conv reads space_to_depth(x): one 2x2 stride-2 conv
            self.primary[0] = SpaceToDepthConv(in_channels, primary)
        self.cheap = conv_bn(primary, out_channels - primary, dw_size, groups=primary, relu=relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), dim=1)


class SqueezeExcite(nn.Module):
    """Channel attention as in GhostNet: global average pool, 1x1 conv to ``channels / reduction`` (>= 4),
    ReLU, 1x1 conv back, hard sigmoid; the input is scaled per channel. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.expand(F.relu(self.reduce(s), inplace=True))
        return x * F.hardsigmoid(s)


class GhostBottleneck(nn.Module):
    """GhostNet bottleneck: ghost module ``in -> mid`` (ReLU), depthwise 3x3 stride-2 conv when
    ``stride == 2``, SE on ``mid`` (optional), ghost module ``mid -> out`` (linear), plus a shortcut (identity
    when shapes agree, otherwise depthwise 3x3 at ``stride`` + 1x1 conv).

    (B, in_channels, H, W) -> (B, out_channels, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1, se: bool = True,
                 ratio: int = 2, se_reduction: int = 4):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.expand = GhostModule(in_channels, mid_channels, ratio, relu=True)
        self.down = conv_bn(mid_channels, mid_channels, 3, 2, groups=mid_channels, relu=False) if stride == 2 \
            else nn.Identity()
        self.se = SqueezeExcite(mid_channels, se_reduction) if se else nn.Identity()
        self.project = GhostModule(mid_channels, out_channels, ratio, relu=False)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                conv_bn(in_channels, in_channels, 3, stride, groups=in_channels, relu=False),
                conv_bn(in_channels, out_channels, 1, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.down(self.expand(x))))
        return y + self.shortcut(x)


class GhostRefine(nn.Module):
    """Up-path unit (DenseStack's "thrink"): ghost module ``in -> out`` (ReLU), then a residual ghost
    bottleneck ``out -> mid -> out`` with SE. (B, in_channels, H, W) -> (B, out_channels, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None, ratio: int = 2,
                 se_reduction: int = 4):
        super().__init__()
        self.reduce = GhostModule(in_channels, out_channels, ratio, relu=True)
        self.refine = GhostBottleneck(out_channels, mid_channels or out_channels, out_channels, 1, True, ratio,
                                      se_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.reduce(x))


class GhostHourglass(nn.Module):
    """One stack of the encoder.

    Encoder: stride-2 ghost bottlenecks ``in -> widths[0] -> widths[1] -> widths[2]`` (H -> H/8 of the stack
    input, i.e. d1 @ H/2, d2 @ H/4, d3 @ H/8); if ``latent_channels`` is given, ``latent_blocks`` ghost
    bottlenecks at H/8 map d3 to the latent (first ``widths[2] -> latent``, then residual).
    Decoder: refine to widths[1], nearest x2, add d2; refine to widths[0], nearest x2, add d1; refine to
    ``out_channels`` at H/2 of the stack input.

    forward (B, in_channels, H, W) -> (out (B, out_channels, H/2, W/2), bottom (B, C_bottom, H/8, W/8)) with
    C_bottom = latent_channels or widths[2].
    """

    def __init__(self, in_channels: int, widths: tuple, out_channels: int, latent_channels: int | None = None,
                 latent_blocks: int = 0, ratio: int = 2, se_reduction: int = 4):
        super().__init__()
        w1, w2, w3 = widths
        kw = dict(ratio=ratio, se_reduction=se_reduction)
        self.down1 = GhostBottleneck(in_channels, w1, w1, stride=2, **kw)
        self.down2 = GhostBottleneck(w1, w2, w2, stride=2, **kw)
        self.down3 = GhostBottleneck(w2, w3, w3, stride=2, **kw)
        bottom = w3
        blocks = []
        if latent_channels is not None:
            for _ in range(latent_blocks):
                blocks.append(GhostBottleneck(bottom, latent_channels, latent_channels, **kw))
                bottom = latent_channels
        self.bottom = nn.Sequential(*blocks)
        self.bottom_channels = bottom
        self.up1 = GhostRefine(bottom, w2, **kw)
        self.up2 = GhostRefine(w2, w1, **kw)
        self.head = GhostRefine(w1, out_channels, **kw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        bottom = self.bottom(self.down3(d2))
        u = d2 + F.interpolate(self.up1(bottom), scale_factor=2, mode="nearest")
        u = d1 + F.interpolate(self.up2(u), scale_factor=2, mode="nearest")
        return self.head(u), bottom


@dataclass(frozen=True)
class GhostStackConfig:
    """Sizes of the GhostStack; the defaults give the paper-sized encoder (4.81 M parameters and 97.1 M
    Mult-Adds at 128x128; the paper's GhostStack has 5.0 M and 96.2 M).

    stem_channels: width of the first 3x3 stride-2 conv (H/2); the stem's depthwise-separable unit doubles it.
    fine_channels: width at H/4 after space-to-depth and the 1x1 reduce; the input width of both stacks.
    widths: encoder widths of each stack at H/8, H/16, H/32.
    latent_channels, latent_blocks: width and number of the ghost bottlenecks at H/32 that end stack 2.
    maps_channels: width of the H/8 output map (read by MapReg).
    ratio: ghost ratio (channels per intrinsic channel); se_reduction: SE bottleneck factor.
    """

    stem_channels: int = 16
    fine_channels: int = 64
    widths: tuple = (96, 192, 512)
    latent_channels: int = 1024
    latent_blocks: int = 2
    maps_channels: int = 24
    ratio: int = 2
    se_reduction: int = 4


class GhostStack(nn.Module):
    """MobRecon's GhostStack 2D encoder (see the module docstring for the layout).

    forward(x): x (B, 3, H, W), a normalised image whose sides are positive multiples of 32 (128x128 in
    MobRecon) -> dict ``maps`` (B, maps_channels, H/8, W/8), ``latent`` (B, latent_channels, H/32, W/32),
    ``fine`` (B, fine_channels, H/4, W/4).
    """

    def __init__(self, config: GhostStackConfig | None = None):
        super().__init__()
        cfg = config or GhostStackConfig()
        if len(cfg.widths) != 3:
            raise ValueError(f"widths must have 3 entries (H/8, H/16, H/32), got {cfg.widths}")
        if cfg.latent_blocks < 1:
            raise ValueError(f"latent_blocks must be >= 1, got {cfg.latent_blocks}")
        self.config = cfg
        kw = dict(ratio=cfg.ratio, se_reduction=cfg.se_reduction)
        s = cfg.stem_channels
        self.maps_channels = cfg.maps_channels
        self.latent_channels = cfg.latent_channels
        self.fine_channels = cfg.fine_channels
        # Stem: H -> H/2 -> (space-to-depth) H/4.
        self.stem_conv = conv_bn(3, s, 3, 2)
        self.stem_unit = nn.Sequential(conv_bn(s, s, 3, groups=s), GhostModule(s, 2 * s, cfg.ratio))
        self.stem_reduce = GhostModule(8 * s, cfg.fine_channels, cfg.ratio, space_to_depth_input=True)
        # Stack 1, then fusion of its (up-sampled) output with the stem feature.
        self.stack1 = GhostHourglass(cfg.fine_channels, tuple(cfg.widths), cfg.maps_channels, **kw)
        self.stack1_remap = conv_bn(cfg.maps_channels, cfg.maps_channels, 1)
        self.fuse = GhostModule(cfg.maps_channels + cfg.fine_channels, cfg.fine_channels, cfg.ratio)
        # Stack 2 ends in the latent at H/32 and the map at H/8.
        self.stack2 = GhostHourglass(cfg.fine_channels, tuple(cfg.widths), cfg.maps_channels,
                                     latent_channels=cfg.latent_channels, latent_blocks=cfg.latent_blocks, **kw)

    def forward(self, x: torch.Tensor) -> dict:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) == 0 or x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"x must have shape (B, 3, H, W) with H and W positive multiples of 32, "
                             f"got {tuple(x.shape)}")
        fine = self.stem_reduce(self.stem_unit(self.stem_conv(x)))
        out1, _ = self.stack1(fine)
        out1 = F.interpolate(out1, scale_factor=2, mode="bilinear", align_corners=False)
        fused = self.fuse(torch.cat((self.stack1_remap(out1), fine), dim=1))
        maps, latent = self.stack2(fused)
        return {"maps": maps, "latent": latent, "fine": fine}
