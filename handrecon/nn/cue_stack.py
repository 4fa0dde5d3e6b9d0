"""CMR's stacked encoder-decoders for 2D cues (section 3.1; the authors' code, see REFERENCE.md).

One stack = a ResNet encoder and a U-Net-like convolutional decoder that predicts maps (joint heatmaps, the
silhouette, or both) at half the input resolution:

- :class:`EncoderStage`: the first stage runs the ResNet stem on the image; a later stage reads the previous
  stage's S/2 feature map concatenated with cue maps and brings it back to the stem width with a
  :class:`ReduceBlock`; then max-pool + ``layer1..layer4``. Returns the S/2 map (the next stage's input) and
  the four feature maps, and, when built with a head, the globally pooled ``fc`` code.
- :class:`UNetCueDecoder`: from the S/32 map up: x2 bilinear up-sampling, concatenation of the encoder's map
  of that size (S/16, S/8, S/4; none at S/2), 3x3 conv + BN + ReLU, and a final 3x3 conv to the output maps
  (logits). The same block is CMR's parallel decoder that re-predicts heatmaps + silhouette from the mesh
  stage's features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from handrecon.nn.mobile import conv_bn_relu
from handrecon.nn.resnet import ResNet

__all__ = ["ReduceBlock", "EncoderStage", "UNetCueDecoder"]


class ReduceBlock(nn.Sequential):
    """(B,C_in,h,w) -> (B,C_out,h,w): 3x3 conv C_in -> C_in, 3x3 conv -> ``hidden``, each + BN + ReLU, then a
    1x1 conv -> C_out + BN (no ReLU), as the authors reduce a stage's input to the ResNet stem width (C_out 64,
    hidden 128)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int):
        super().__init__(conv_bn_relu(in_channels, in_channels, 3), conv_bn_relu(in_channels, hidden, 3),
                         conv_bn_relu(hidden, out_channels, 1, relu=False))


class EncoderStage(nn.Module):
    """One encoder of the stack.

    Args:
        backbone: a :class:`handrecon.nn.ResNet`; built with its stem for the first stage (``in_channels``
            None), without it otherwise.
        in_channels: channels of a later stage's S/2 input (previous features + cue maps); None = RGB input.

    ``forward(x)`` -> dict with ``stem`` (B,w,S/2,S/2), ``features`` [S/4, S/8, S/16, S/32 maps] and, if the
    backbone has a head, ``code`` (B,num_classes).
    """

    def __init__(self, backbone: ResNet, in_channels: int | None = None):
        super().__init__()
        if (in_channels is None) != backbone.has_stem:
            raise ValueError("the first stage (in_channels=None) needs a ResNet with its stem; a later stage one "
                             "without")
        self.backbone = backbone
        self.reduce = (None if in_channels is None
                       else ReduceBlock(int(in_channels), backbone.width, 2 * backbone.width))

    @property
    def channels(self) -> tuple:
        return self.backbone.channels

    def forward(self, x: torch.Tensor) -> dict:
        stem = self.backbone.forward_stem(x) if self.reduce is None else self.reduce(x)
        feats = self.backbone.forward_layers(stem)
        out = {"stem": stem, "features": feats}
        if self.backbone.num_classes > 0:
            out["code"] = self.backbone.forward_head(feats[-1])
        return out


class UNetCueDecoder(nn.Module):
    """[S/4, S/8, S/16, S/32] feature maps -> (B,out_maps,S/2,S/2) logits.

    Args:
        channels: (c1, c2, c3, c4) channels of the four maps (``ResNet.channels[1:]``).
        out_maps: number of output maps (21 heatmaps, 1 silhouette, 22 both).
    """

    def __init__(self, channels, out_maps: int):
        super().__init__()
        c1, c2, c3, c4 = (int(c) for c in channels)
        self.layers = nn.ModuleList([conv_bn_relu(c4 + c3, c3, 3), conv_bn_relu(c3 + c2, c2, 3),
                                     conv_bn_relu(c2 + c1, c1, 3), conv_bn_relu(c1, c1, 3)])
        self.head = nn.Conv2d(c1, int(out_maps), 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.head.bias)

    def forward(self, features) -> torch.Tensor:
        c1, c2, c3, c4 = features
        x = c4
        for layer, skip in zip(self.layers, (c3, c2, c1, None)):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            if skip is not None:
                x = torch.cat([x, skip], 1)
            x = layer(x)
        return self.head(x)
