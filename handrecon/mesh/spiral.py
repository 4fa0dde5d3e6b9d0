"""Spiral sequences on a triangle mesh.

A spiral of vertex ``i`` lists ``i`` first, then its 1-ring, then its 2-ring, and so on, each ring in a
consistent rotational order, truncated to a fixed length. Spiral convolutions (CMR, MobRecon) gather
vertex features along these sequences, so the order is part of a trained network: it is fixed here, by
rule, and shipped as an asset (see :mod:`handrecon.mesh.topology`).

Ordering rule (faces are assumed to wind counter-clockwise seen from outside, as trimesh expects):

- *Rotation around a vertex* ``v``: every face ``(v, a, b)`` (rotated so that ``v`` comes first) says
  that ``b`` follows ``a`` counter-clockwise around the outward normal. For a vertex inside the surface
  the neighbours form one cycle, which starts at the lowest-index neighbour. For a vertex on an open
  boundary the neighbours form an open fan, which starts at its first neighbour (the one no face leads
  to; the lowest-index such neighbour if there are several).
- *1-ring*: the rotation around the centre, from its start.
- *Ring k+1*: walk ring k in its order; around each ring-k vertex ``r`` take the neighbours that are not
  yet listed, counter-clockwise, starting right after the neighbour of ``r`` that was listed most
  recently before ``r`` (so on a regular mesh each ring continues the turn of the previous one).
- *Filling*: when the whole connected component is listed before the sequence is long enough, the
  sequence is continued by cycling through the listed vertices other than the centre, nearest first
  (graph distance, then index); an isolated vertex is repeated. No entry is ever ``-1``.
- *Dilation* ``d``: build the sequence of length ``length * d`` and keep every ``d``-th entry (the centre
  stays first).

On non-manifold input (an edge shared by more than two faces, inconsistent winding) the rule still
gives a deterministic sequence: where a neighbour has several successors the lowest-index one is taken,
and a broken chain restarts at the lowest-index remaining neighbour.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["spiral_sequence", "vertex_rotations"]


def _as_faces(faces, num_vertices: int | None = None) -> np.ndarray:
    if isinstance(faces, torch.Tensor):
        faces = faces.detach().cpu().numpy()
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.size and not np.issubdtype(faces.dtype, np.integer):
        if not np.array_equal(faces, np.round(faces)):
            raise ValueError(f"faces must hold integer vertex indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.size and faces.min() < 0:
        raise ValueError("faces must hold non-negative vertex indices")
    if num_vertices is not None and faces.size and faces.max() >= num_vertices:
        raise ValueError(
            f"faces refer to vertex {int(faces.max())} but num_vertices is {num_vertices}"
        )
    return faces


def vertex_rotations(faces, num_vertices: int) -> list[list[int]]:
    """Neighbours of every vertex in counter-clockwise order (see the module docstring for the rule).

    Args:
        faces: (F, 3) integer array or LongTensor, counter-clockwise seen from outside.
        num_vertices: V, the number of vertices (isolated vertices get an empty list).

    Returns:
        A list of V lists; entry ``v`` holds the neighbours of ``v`` in rotational order.
    """
    num_vertices = _check_num_vertices(num_vertices)
    faces = _as_faces(faces, num_vertices)
    # successors: succ[v][a] = the set of b with a face (v, a, b)
    succ: list[dict[int, set[int]]] = [dict() for _ in range(num_vertices)]
    for f0, f1, f2 in faces.tolist():
        if f0 == f1 or f1 == f2 or f0 == f2:
            continue  # a degenerate face says nothing about rotation
        for v, a, b in ((f0, f1, f2), (f1, f2, f0), (f2, f0, f1)):
            succ[v].setdefault(a, set()).add(b)
            succ[v].setdefault(b, set())
    rotations: list[list[int]] = []
    for v in range(num_vertices):
        s = succ[v]
        if not s:
            rotations.append([])
            continue
        neighbours = sorted(s)
        order: list[int] = []
        seen: set[int] = set()
        while len(order) < len(neighbours):
            remaining = [n for n in neighbours if n not in seen]
            # start a chain where no unvisited neighbour leads to (open fan), else at the lowest index
            starts = [n for n in remaining if not any(n in s[m] for m in remaining if m != n)]
            cur = starts[0] if starts else remaining[0]
            while cur is not None:
                order.append(cur)
                seen.add(cur)
                nxt = sorted(b for b in s[cur] if b not in seen)
                cur = nxt[0] if nxt else None
        rotations.append(order)
    return rotations


def _check_num_vertices(num_vertices) -> int:
    if isinstance(num_vertices, bool) or not isinstance(num_vertices, (int, np.integer)):
        raise ValueError(f"num_vertices must be an int, got {type(num_vertices).__name__}")
    if num_vertices < 1:
        raise ValueError(f"num_vertices must be >= 1, got {num_vertices}")
    return int(num_vertices)


def _check_length(length, dilation) -> tuple[int, int]:
    for name, value in (("length", length), ("dilation", dilation)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(length), int(dilation)


def _spiral_of(centre: int, rotations: Sequence[Sequence[int]], total: int) -> list[int]:
    seq = [centre]
    pos = {centre: 0}
    ring = list(rotations[centre])
    for v in ring:
        pos[v] = len(seq)
        seq.append(v)
    by_distance: list[tuple[int, int]] = [(1, v) for v in ring]
    depth = 1
    while ring and len(seq) < total:
        depth += 1
        nxt: list[int] = []
        for r in ring:
            rot = rotations[r]
            p_r = pos[r]
            # the neighbour of r listed most recently before r
            ref, ref_pos = -1, -1
            for k, u in enumerate(rot):
                p_u = pos.get(u)
                if p_u is not None and ref_pos < p_u < p_r:
                    ref, ref_pos = k, p_u
            start = ref + 1
            for u in list(rot[start:]) + list(rot[:start]):
                if u not in pos:
                    pos[u] = len(seq)
                    seq.append(u)
                    nxt.append(u)
        by_distance.extend((depth, v) for v in nxt)
        ring = nxt
    if len(seq) < total:
        fill = [v for _, v in sorted(by_distance)] or [centre]
        k = 0
        while len(seq) < total:
            seq.append(fill[k % len(fill)])
            k += 1
    return seq[:total]


def spiral_sequence(faces, num_vertices: int, length: int, dilation: int = 1) -> torch.Tensor:
    """Spiral sequence of every vertex of a triangle mesh.

    Args:
        faces: (F, 3) integer array or LongTensor, counter-clockwise seen from outside.
        num_vertices: V, the number of vertices of the mesh.
        length: number of entries per spiral (centre included).
        dilation: keep every ``dilation``-th entry of a spiral of ``length * dilation`` entries.

    Returns:
        LongTensor (V, length); row ``i`` starts with ``i``, then the 1-ring (counter-clockwise from its
        lowest-index neighbour), then further rings; see the module docstring for the full rule.

    Raises:
        ValueError: on a faces array that is not (F, 3) integers within ``[0, num_vertices)``, or a
            non-positive ``num_vertices``, ``length`` or ``dilation``.
    """
    num_vertices = _check_num_vertices(num_vertices)
    length, dilation = _check_length(length, dilation)
    rotations = vertex_rotations(faces, num_vertices)
    total = length * dilation
    out = np.empty((num_vertices, length), dtype=np.int64)
    for v in range(num_vertices):
        out[v] = _spiral_of(v, rotations, total)[::dilation]
    return torch.from_numpy(out)
