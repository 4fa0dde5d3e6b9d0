"""CMR's Inception Spiral Module (ISM, Chen et al. CVPR 2021, Eq. 2 and Figure 4).

Parallel spiral convolutions over nested prefixes of each vertex's spiral (the first 27, 18 and 9 neighbours,
i.e. growing k-disks: a hierarchy of receptive fields), concatenated, plus a length-1 spiral convolution (a
per-vertex linear layer) as shortcut:

    o_i(v) = W_i f(spiral_i(v)) + b_i,       ISM(v) = o_0(v) + [o_1(v), o_2(v), o_3(v)]

with ``o_1`` the longest prefix (C/2 channels) and ``o_2``, ``o_3`` the shorter ones (C/4 each); ``o_0`` has all
C channels. The ReLU that follows in the decoder is not part of the module.
"""

from __future__ import annotations

import torch
from torch import nn

from handrecon.nn.spiral import SpiralConv, _check_features, _as_indices

__all__ = ["InceptionSpiralModule", "ism_channels"]


def ism_channels(out_channels: int) -> tuple[int, int, int]:
    """Widths of the three branches for ``out_channels`` C: (C - 2 (C // 4), C // 4, C // 4) = (C/2, C/4, C/4)."""
    c = int(out_channels)
    if c < 4:
        raise ValueError(f"out_channels of an ISM must be >= 4 (C/2 + C/4 + C/4), got {c}")
    return c - 2 * (c // 4), c // 4, c // 4


class InceptionSpiralModule(nn.Module):
    """(B,V,C_in) -> (B,V,C_out): Eq. 2 of CMR.

    Args:
        in_channels, out_channels: widths.
        indices: (V, L) spiral indices (row ``i`` starts with ``i``).
        lengths: spiral prefixes of the three branches, longest first; default ``(L, 2L/3, L/3)`` as the
            authors' code takes them (27, 18, 9 for L = 27).
    """

    def __init__(self, in_channels: int, out_channels: int, indices, lengths=None):
        super().__init__()
        indices = _as_indices(indices)
        L = int(indices.shape[1])
        if lengths is None:
            if L < 3:
                raise ValueError(f"an ISM needs spirals of length >= 3, got {L}")
            lengths = (L, L // 3 * 2, L // 3)
        lengths = tuple(int(n) for n in lengths)
        if len(lengths) != 3 or not all(1 <= n <= L for n in lengths):
            raise ValueError(f"lengths must be 3 spiral prefixes in [1, {L}], got {lengths}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.lengths = lengths
        self.branches = nn.ModuleList(SpiralConv(in_channels, c, indices[:, :n])
                                      for c, n in zip(ism_channels(out_channels), lengths))
        self.shortcut = SpiralConv(in_channels, out_channels, indices[:, :1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.shortcut.indices.shape[0], self.in_channels, "InceptionSpiralModule")
        return self.shortcut(x) + torch.cat([b(x) for b in self.branches], -1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, lengths={self.lengths}"
