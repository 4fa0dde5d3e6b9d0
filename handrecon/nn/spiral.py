"""Graph operators on the mesh hierarchy: spiral convolutions and mesh up-sampling.

All operators take vertex features ``(B, V, C)`` and hold their spiral indices / up-sampling weights as
buffers, so a model moves to a device, saves and exports (ONNX) as one piece. Indices come from
:class:`handrecon.mesh.Topology` (``topology.spiral(level, length)``; row ``i`` starts with ``i``).

- :class:`SpiralConv`: SpiralConv++ (Gong et al. 2019; MobRecon Eq. 7): gather the first ``S`` spiral
  neighbours, concatenate, one linear layer. O(S D^2) work.
- :class:`DSConv`: MobRecon's depth-separable spiral convolution (Eqs. 8-9): a per-channel weighting of the
  ``S`` neighbours (depth-wise), then a point-wise linear layer without bias. O(S D + D^2) work.
- :class:`MeshUpsample`: the barycentric up-sampling of the hierarchy as a gather of at most 3 coarse vertices
  per fine vertex (the same numbers as ``topology.up[l] @ x``, without a sparse matmul, so it exports).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SpiralConv", "DSConv", "MeshUpsample", "SpiralDecoder", "spiral_gather"]


def _as_indices(indices, name: str = "indices") -> torch.Tensor:
    indices = torch.as_tensor(indices, dtype=torch.long).clone()  # own copy: shared buffers cannot be saved
    if indices.ndim != 2 or indices.shape[1] < 1:
        raise ValueError(f"{name} must have shape (V, S) with S >= 1, got {tuple(indices.shape)}")
    if indices.numel() and (indices.min() < 0 or indices.max() >= indices.shape[0]):
        raise ValueError(f"{name} must hold vertex indices in [0, {indices.shape[0]}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    return indices


def spiral_gather(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(B,V,C) features, (V,S) spiral indices -> (B,V,S,C) neighbour features."""
    V, S = indices.shape
    return x.index_select(1, indices.reshape(-1)).view(x.shape[0], V, S, x.shape[2])


def _check_features(x: torch.Tensor, num_vertices: int, channels: int, who: str) -> None:
    if x.ndim != 3 or x.shape[1] != num_vertices or x.shape[2] != channels:
        raise ValueError(f"{who}: x must have shape (B, {num_vertices}, {channels}), got {tuple(x.shape)}")


class SpiralConv(nn.Module):
    """SpiralConv++: ``out_v = W [x_s for s in spiral(v)] + b``; (B,V,C_in) -> (B,V,C_out)."""

    def __init__(self, in_channels: int, out_channels: int, indices):
        super().__init__()
        self.register_buffer("indices", _as_indices(indices))
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.length = int(self.indices.shape[1])
        self.linear = nn.Linear(self.in_channels * self.length, self.out_channels)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.indices.shape[0], self.in_channels, "SpiralConv")
        return self.linear(spiral_gather(x, self.indices).flatten(2))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, length={self.length}, vertices={self.indices.shape[0]}"


#: In ONNX exports, DSConvs with at most this many output channels run as one matrix product of the flattened
#: spiral features with :meth:`DSConv.fused_weight` (S x more multiply-adds, but no element-wise pass over the
#: (V, S, C_in) neighbours, which is memory-bound): MobRecon's two finest layers (64 -> 32 and 32 -> 3 channels
#: at 778 vertices), -4% ONNX Runtime latency for both MobRecon encoders on 1 and 2 threads (a Xeon). Wider
#: layers are faster unfused. PyTorch keeps the two steps, so training and the Mult-Add counts are the paper's.
EXPORT_FUSED_MAX_OUT = 32


class DSConv(nn.Module):
    """Depth-separable spiral convolution; (B,V,C_in) -> (B,V,C_out).

    ``d_v[c] = sum_s w[s, c] x_{spiral(v)_s}[c]`` (depth-wise, Eq. 8), then ``out_v = W_p d_v`` (point-wise,
    no bias, Eq. 9).
    """

    def __init__(self, in_channels: int, out_channels: int, indices):
        super().__init__()
        self.register_buffer("indices", _as_indices(indices))
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.length = int(self.indices.shape[1])
        # Xavier-uniform as for a (C, 1, S) depth-wise kernel: fan_in = fan_out = S
        bound = math.sqrt(6.0 / (2 * self.length))
        self.depthwise = nn.Parameter(torch.empty(self.length, self.in_channels).uniform_(-bound, bound))
        self.pointwise = nn.Linear(self.in_channels, self.out_channels, bias=False)
        nn.init.xavier_uniform_(self.pointwise.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.indices.shape[0], self.in_channels, "DSConv")
        g = spiral_gather(x, self.indices)
        if self.out_channels <= EXPORT_FUSED_MAX_OUT and torch.onnx.is_in_onnx_export():
            return g.flatten(2) @ self.fused_weight().t()
        # multiply-and-sum rather than einsum: same numbers, and ONNX Runtime's Einsum kernel is ~20x slower
        return self.pointwise((g * self.depthwise).sum(2))

    def fused_weight(self) -> torch.Tensor:
        """The two steps as one (C_out, S * C_in) matrix on the flattened spiral features: ``W_p[o, c] w[s, c]``
        at column ``s * C_in + c``."""
        return (self.pointwise.weight[:, None, :] * self.depthwise[None]).flatten(1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, length={self.length}, vertices={self.indices.shape[0]}"


class MeshUpsample(nn.Module):
    """Coarse (B,V_c,C) -> fine (B,V_f,C) with an up-sampling matrix (V_f,V_c) of <= ``k`` non-zeros per row."""

    def __init__(self, up: torch.Tensor, k: int = 3):
        super().__init__()
        dense = up.to_dense() if up.is_sparse else torch.as_tensor(up)
        if dense.ndim != 2:
            raise ValueError(f"up must be a (V_fine, V_coarse) matrix, got shape {tuple(dense.shape)}")
        nnz = (dense != 0).sum(1)
        if int(nnz.max()) > k:
            raise ValueError(f"up has rows with {int(nnz.max())} non-zeros; at most {k} are supported")
        _, cols = dense.abs().topk(k, dim=1)  # non-zeros first; padding columns get weight 0
        weights = dense.gather(1, cols)
        self.num_coarse = int(dense.shape[1])
        self.register_buffer("cols", cols)
        self.register_buffer("weights", weights.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.num_coarse:
            raise ValueError(f"MeshUpsample: x must have shape (B, {self.num_coarse}, C), got {tuple(x.shape)}")
        V, k = self.cols.shape
        g = x.index_select(1, self.cols.reshape(-1)).view(x.shape[0], V, k, x.shape[2])
        return (g * self.weights[None, :, :, None].to(x.dtype)).sum(2)


class SpiralDecoder(nn.Module):
    """MobRecon's 3D decoder: coarsest-level features (B,V_L,C_0) -> vertices (B,V_0,3).

    For each level from the coarsest up: up-sample x2 (:class:`MeshUpsample`), spiral convolution to the next
    width, ReLU; then a spiral convolution head to xyz at the finest level (section 3.3). ``conv`` is
    :class:`DSConv` or :class:`SpiralConv`.

    Args:
        in_channels: width of the input features.
        channels: widths after each up-block, coarse to fine, e.g. (256, 128, 64, 32).
        spirals: spiral indices per level, fine to coarse (level 0 first); ``len(channels)`` of them.
        ups: up-sampling matrices per level, fine to coarse (``topology.up``); ``up[l]`` is (V_l, V_{l+1}).
    """

    def __init__(self, in_channels: int, channels, spirals, ups, conv=DSConv):
        super().__init__()
        n = len(channels)
        if len(spirals) < n or len(ups) < n:
            raise ValueError(f"{n} up-blocks need {n} spiral levels and up matrices, got {len(spirals)} and {len(ups)}")
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        width = int(in_channels)
        for i, c in enumerate(channels):
            level = n - 1 - i  # the fine level this block produces
            self.ups.append(MeshUpsample(ups[level]))
            self.convs.append(conv(width, c, spirals[level]))
            width = c
        self.head = conv(width, 3, spirals[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for up, conv in zip(self.ups, self.convs):
            x = torch.relu(conv(up(x)))
        return self.head(x)
