"""Small convolutional units of the mobile encoders (MobRecon's DenseStack; see :mod:`handrecon.nn.densestack`).

- :func:`conv_bn_relu`: convolution (no bias) + batch norm + ReLU, each part optional.
- :class:`SeparableUnit`: depth-wise 3x3 convolution(s) + point-wise 1x1 convolution, each with batch norm and
  ReLU, and a residual connection when the shape is kept (MobileNet's unit as the authors' ``mobile_unit``).
- :class:`SqueezeExcitation`: channel attention ``x * sigmoid(fc2(act(fc1(avgpool(x)))))``, the hidden width
  ``min(C/2, 256)``, with batch norm on the fully connected layers and a ReLU clipped at 4 as in the code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["conv_bn_relu", "SeparableUnit", "SqueezeExcitation", "space_to_depth", "SpaceToDepthConv"]


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) -> (B,4C,H/2,W/2), channel ``4c + 2dy + dx`` = pixel (2i + dy, 2j + dx) of channel c: the same
    numbers as ``F.pixel_unshuffle(x, 2)`` (the authors' "reorg"), written as four strided slices because the
    exported 6-D transpose is slow in ONNX Runtime."""
    B, C, H, W = x.shape
    parts = [x[:, :, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
    return torch.stack(parts, 2).reshape(B, 4 * C, H // 2, W // 2)


class SpaceToDepthConv(nn.Conv2d):
    """A 1x1 convolution of :func:`space_to_depth` (x): (B,C,H,W) -> (B,C_out,H/2,W/2).

    Computed as the equivalent 2x2 stride-2 convolution of ``x`` (weight ``[o, 4c + 2dy + dx]`` is tap
    ``(dy, dx)`` of channel ``c``): the same parameters, numbers and multiply-adds as space-to-depth + 1x1
    conv, one fast operation instead of a memory reshuffle (the authors' "reorg" + 1x1 conv).
    ``in_channels`` is the space-to-depth width 4C, as for the 1x1 convolution it replaces.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        if in_channels % 4:
            raise ValueError(f"in_channels must be 4 x the input's channels, got {in_channels}")
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(self.out_channels, self.in_channels // 4, 2, 2)
        return F.conv2d(x, w, self.bias, stride=2)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 bn: bool = True, relu: bool = True) -> nn.Sequential:
    """Conv2d (no bias, 'same' padding for odd kernels) [+ BatchNorm2d] [+ ReLU]."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SeparableUnit(nn.Module):
    """(B,C_in,H,W) -> (B,C_out,H/stride,W/stride): ``depthwise`` 3x3 convs (the last with ``stride``), then a
    1x1 conv; plus the input when ``stride == 1`` and ``C_in == C_out``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, num_depthwise: int = 1):
        super().__init__()
        self.depthwise = nn.Sequential(*[
            conv_bn_relu(in_channels, in_channels, 3, stride if i == num_depthwise - 1 else 1, groups=in_channels)
            for i in range(num_depthwise)])
        self.pointwise = conv_bn_relu(in_channels, out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return out + x if self.residual else out


class SqueezeExcitation(nn.Module):
    """(B,C,H,W) -> (B,C,H,W) rescaled per channel by a gate computed from the global average."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = min(channels // 2, 256)
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden, bias=False), nn.BatchNorm1d(hidden), nn.Hardtanh(0.0, 4.0),
            nn.Linear(hidden, channels, bias=False), nn.BatchNorm1d(channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(x.mean((2, 3)))
        return x * w[:, :, None, None]
