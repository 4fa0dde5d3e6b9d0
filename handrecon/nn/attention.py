"""Self-attention over the entries of one feature vector, as CMR's code applies it to the 1000-d image code
before the mesh decoder (the paper does not describe it; the authors' CMR-SG/-PG build it, CMR-G optionally).

For x (B,D): q, k, v = linear maps of x (D -> D each); A = softmax_j(q_i k_j) is a (D,D) attention between
entries; ``out = gamma * (A v) + x`` with a learnt scalar ``gamma`` that starts at 0 (the block starts as the
identity).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VectorSelfAttention"]


class VectorSelfAttention(nn.Module):
    """(B,D) -> (B,D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = int(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        for lin in (self.query, self.key, self.value):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"VectorSelfAttention: x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        energy = self.query(x).unsqueeze(2) @ self.key(x).unsqueeze(1)  # (B,D,D) outer product
        attended = energy.softmax(-1) @ self.value(x).unsqueeze(2)  # (B,D,1)
        return self.gamma * attended.squeeze(2) + x
