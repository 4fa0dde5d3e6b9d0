"""Mesh hierarchy of a template: levels, down/up-sampling matrices, spirals, and their cached asset.

The hierarchy is what the spiral mesh decoders (CMR, MobRecon) run on: the 778-vertex template and coarser
levels of 389, 195, 98 and 49 vertices.

How level ``l + 1`` is made from level ``l``:

1. Quadric edge collapse (``fast_simplification``) to exactly the requested vertex count: the decimator
   stops at the first state with at most ``t`` faces, so ``t`` is bisected until the count is exact (this
   works with or without an open boundary). Quadric collapse does not test the link condition, so a
   collapse can fold the mesh (duplicate faces, non-manifold edges, a split boundary); such a collapse
   is found by bisection and replaced by a safe one, or the decimation goes on from the last valid state
   in another mode (aggressiveness, open-boundary vertices kept). Every level is checked to be one
   connected, edge- and vertex-manifold, consistently wound component of the same Euler characteristic,
   with no degenerate or duplicate face; if no mode gives that, a ValueError says why.
2. Snapping: the decimator moves vertices, so every coarse vertex is then put on a distinct fine vertex,
   chosen (greedy coordinate descent, fixed order, deterministic) among the fine vertices merged into it
   and their neighbours, to minimise the mean distance of the fine vertices to the coarse surface without
   flipping coarse triangles. Hence ``vertices[l + 1] == down[l] @ vertices[l]`` exactly.

- ``down[l]``: sparse (V_{l+1}, V_l), one 1 per row (the kept fine vertex).
- ``up[l]``: sparse (V_l, V_{l+1}), exactly 3 entries per row: the barycentric weights (>= 0, sum 1) of
  the point of the nearest coarse triangle closest to the fine vertex (template positions).

Everything is deterministic: the same template gives bit-identical tensors. The result is shipped for the
bundled open hand (``handrecon/assets/open_hand_topology.safetensors``, made by
``scripts/build_topology.py``) and cached on disk for any other template
(``$HANDRECON_CACHE/topology/<sha256>.safetensors``, by default under ``~/.cache/handrecon``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import warnings
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import torch

from handrecon.fileio import atomic_path

from .spiral import spiral_sequence

__all__ = [
    "DEFAULT_NUM_VERTICES",
    "DEFAULT_SPIRAL_LENGTHS",
    "FORMAT_VERSION",
    "BUNDLED_ASSET",
    "ReconstructionErrors",
    "Topology",
    "build_topology",
    "default_cache_dir",
    "load_topology",
    "load_topology_file",
    "reconstruction_errors",
    "save_topology",
    "template_hash",
]

#: Version of the asset layout and of the rules that make it; a file with another version is rebuilt.
FORMAT_VERSION = "1"
#: Vertex counts of the coarse levels (the template's own count comes first in ``Topology.num_vertices``).
DEFAULT_NUM_VERTICES = (389, 195, 98, 49)
#: Spiral lengths stored in an asset (MobRecon uses 9, CMR 27; 18 is a prefix of 27).
DEFAULT_SPIRAL_LENGTHS = (9, 27)
#: File name of the bundled asset inside the ``handrecon.assets`` package.
BUNDLED_ASSET = "open_hand_topology.safetensors"

# quadric aggressiveness values tried, in order, until the decimation keeps the mesh valid
_AGGRESSIVENESS = (4.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
_MAX_REFINE_PASSES = 8
_MAX_STAGES = 64


# ----------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------
def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_vertices(vertices, name: str = "vertices") -> np.ndarray:
    v = _to_numpy(vertices)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{name} must have shape (V, 3), got {tuple(v.shape)}")
    if not np.issubdtype(v.dtype, np.floating) and not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"{name} must hold real numbers, got dtype {v.dtype}")
    v = v.astype(np.float64)
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return v


def _check_faces(faces, num_vertices: int, name: str = "faces") -> np.ndarray:
    f = _to_numpy(faces)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{name} must have shape (F, 3), got {tuple(f.shape)}")
    if f.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one triangle")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{name} must hold integer vertex indices, got dtype {f.dtype}")
    f = f.astype(np.int64)
    if f.min() < 0 or f.max() >= num_vertices:
        raise ValueError(
            f"{name} must index vertices in [0, {num_vertices}), got range [{f.min()}, {f.max()}]"
        )
    return f


def template_hash(vertices, faces) -> str:
    """SHA-256 (hex) of a template: vertices as little-endian float32 bytes, then faces as int64 bytes.

    Args:
        vertices: (V, 3) array or tensor.
        faces: (F, 3) integer array or tensor.
    """
    v = _check_vertices(vertices)
    f = _check_faces(faces, v.shape[0])
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(v, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(f, dtype="<i8").tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# mesh checks
# ----------------------------------------------------------------------------------------------------------
def _edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=0)


def _adjacency(faces: np.ndarray, num_vertices: int):
    """Symmetric vertex adjacency (scipy CSR, V x V)."""
    from scipy.sparse import coo_matrix

    e = _edges(faces)
    a = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices, num_vertices)).tocsr()
    return ((a + a.T) > 0).tocsr()


def _num_components(faces: np.ndarray, num_vertices: int) -> int:
    from scipy.sparse.csgraph import connected_components

    return int(connected_components(_adjacency(faces, num_vertices), directed=False)[0])


def _euler(faces: np.ndarray, num_vertices: int) -> int:
    e = np.sort(_edges(faces), axis=1)
    return num_vertices - len(np.unique(e, axis=0)) + len(faces)


def _mesh_problems(faces: np.ndarray, num_vertices: int) -> list[str]:
    """Reasons why ``faces`` is not a clean, connected, consistently wound manifold (empty if it is)."""
    problems = []
    if (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    ).any():
        problems.append("degenerate faces (a repeated vertex)")
    if len(np.unique(np.sort(faces, axis=1), axis=0)) != len(faces):
        problems.append("duplicate faces")
    if len(np.unique(faces)) != num_vertices:
        problems.append("vertices used by no face")
    directed = _edges(faces)
    if len(np.unique(directed, axis=0)) != len(directed):
        problems.append("inconsistent winding or an edge shared by more than two faces")
    _, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    if (counts > 2).any():
        problems.append("an edge shared by more than two faces")
    if problems:
        return problems
    # every vertex's link (the opposite edges of its faces) must be one path or one cycle
    link: list[list[tuple[int, int]]] = [[] for _ in range(num_vertices)]
    for a, b, c in faces.tolist():
        link[a].append((b, c))
        link[b].append((c, a))
        link[c].append((a, b))
    for v, edges in enumerate(link):
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in edges:
            parent[find(a)] = find(b)
        if len({find(x) for x in list(parent)}) != 1:
            problems.append(f"non-manifold vertex {v}")
            break
    if _num_components(faces, num_vertices) != 1:
        problems.append("more than one connected component")
    return problems


# ----------------------------------------------------------------------------------------------------------
# geometry: closest point on triangles
# ----------------------------------------------------------------------------------------------------------
def _closest_barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights (..., 3) of the point of triangle (a, b, c) closest to p (broadcast (..., 3)).

    Region tests of the closest-point-on-triangle method in Ericson, Real-Time Collision Detection (5.1.5);
    weights are >= 0 and sum to 1, degenerate triangles fall back to their vertices and edges.
    """
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1 = np.einsum("...k,...k->...", ab, ap)
    d2 = np.einsum("...k,...k->...", ac, ap)
    d3 = np.einsum("...k,...k->...", ab, bp)
    d4 = np.einsum("...k,...k->...", ac, bp)
    d5 = np.einsum("...k,...k->...", ab, cp)
    d6 = np.einsum("...k,...k->...", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2

    def safe_div(n, d):
        ok = d != 0
        return np.where(ok, n / np.where(ok, d, 1.0), 0.0)

    shape = np.broadcast(d1, va).shape
    w = np.empty(shape + (3,), dtype=np.float64)
    # interior (lowest priority; regions below overwrite it)
    denom = va + vb + vc
    bv = np.clip(safe_div(vb, denom), 0.0, 1.0)
    bw = np.clip(safe_div(vc, denom), 0.0, 1.0)
    w[..., 0], w[..., 1], w[..., 2] = 1.0 - bv - bw, bv, bw
    # edge bc
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    t = np.clip(safe_div(d4 - d3, (d4 - d3) + (d5 - d6)), 0.0, 1.0)
    w[m] = np.stack([np.zeros_like(t), 1.0 - t, t], axis=-1)[m]
    # edge ac
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    t = np.clip(safe_div(d2, d2 - d6), 0.0, 1.0)
    w[m] = np.stack([1.0 - t, np.zeros_like(t), t], axis=-1)[m]
    # vertex c
    m = (d6 >= 0) & (d5 <= d6)
    w[m] = (0.0, 0.0, 1.0)
    # edge ab
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    t = np.clip(safe_div(d1, d1 - d3), 0.0, 1.0)
    w[m] = np.stack([1.0 - t, t, np.zeros_like(t)], axis=-1)[m]
    # vertex b
    m = (d3 >= 0) & (d4 <= d3)
    w[m] = (0.0, 1.0, 0.0)
    # vertex a (highest priority)
    m = (d1 <= 0) & (d2 <= 0)
    w[m] = (1.0, 0.0, 0.0)
    w = np.clip(w, 0.0, 1.0)
    return w / w.sum(axis=-1, keepdims=True)


def _point_triangle_distances(points: np.ndarray, triangles: np.ndarray, chunk: int = 128):
    """Distances (N, M) from every point (N, 3) to every triangle (M, 3, 3)."""
    out = np.empty((len(points), len(triangles)), dtype=np.float64)
    a, b, c = triangles[None, :, 0], triangles[None, :, 1], triangles[None, :, 2]
    for s in range(0, len(points), chunk):
        p = points[s : s + chunk, None, :]
        w = _closest_barycentric(p, a, b, c)
        q = w[..., 0:1] * a + w[..., 1:2] * b + w[..., 2:3] * c
        out[s : s + chunk] = np.linalg.norm(p - q, axis=-1)
    return out


def _upsampling(fine: np.ndarray, coarse: np.ndarray, coarse_faces: np.ndarray):
    """Rows, columns, weights (3 per fine vertex) of barycentric up-sampling onto the nearest triangle."""
    tris = coarse[coarse_faces]
    dist = _point_triangle_distances(fine, tris)
    nearest = np.argmin(dist, axis=1)  # first minimum: deterministic tie-break
    t = tris[nearest]
    w = _closest_barycentric(fine, t[:, 0], t[:, 1], t[:, 2])
    rows = np.repeat(np.arange(len(fine)), 3)
    cols = coarse_faces[nearest].reshape(-1)
    return rows, cols, w.reshape(-1)


# ----------------------------------------------------------------------------------------------------------
# one level of decimation
# ----------------------------------------------------------------------------------------------------------
class _Level(NamedTuple):
    faces: np.ndarray  # (F_c, 3) faces of the coarse level
    label: np.ndarray  # (V_f,) coarse vertex every fine vertex was merged into
    kept: np.ndarray  # (V_c,) fine vertex the decimator kept for every coarse vertex
    positions: np.ndarray  # (V_c, 3) the decimator's (moved) positions

    @property
    def members(self) -> list[np.ndarray]:
        """members[j]: the fine vertices merged into coarse vertex j, ascending."""
        order = np.argsort(self.label, kind="stable")
        splits = np.cumsum(np.bincount(self.label, minlength=len(self.kept)))[:-1]
        return np.split(order, splits)


def _run_decimation(points, faces, target_faces: int, mode: tuple[float, bool]):
    import fast_simplification

    agg, preserve_border = mode
    p, f, collapses = fast_simplification.simplify(
        points,
        faces,
        target_count=int(target_faces),
        agg=agg,
        return_collapses=True,
        preserve_border=preserve_border,
    )
    return np.asarray(p, dtype=np.float64), np.asarray(f, dtype=np.int64), np.asarray(collapses)


def _canonical_faces(faces: np.ndarray) -> np.ndarray:
    """Faces rotated to start at their lowest index (winding kept), rows sorted."""
    k = np.argmin(faces, axis=1)
    idx = (k[:, None] + np.arange(3)[None, :]) % 3
    rolled = np.take_along_axis(faces, idx, axis=1)
    return rolled[np.lexsort(rolled.T[::-1])]


def _interpret(faces, p, f, collapses) -> _Level | None:
    """Map a decimation result back to the fine vertices; None if it is not a plain edge-collapse result."""
    n = int(faces.max()) + 1
    parent = np.arange(n)
    for i0, i1 in collapses.reshape(-1, 2).tolist():
        parent[i1] = i0
    root = parent.copy()
    for _ in range(n):  # follow chains (a vertex is collapsed at most once, so this converges)
        nxt = parent[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    mapped = root[faces]
    ok = (mapped[:, 0] != mapped[:, 1]) & (mapped[:, 1] != mapped[:, 2]) & (mapped[:, 0] != mapped[:, 2])
    survivors = np.unique(mapped[ok])
    # the decimator keeps the surviving vertices in their original order
    if len(survivors) != len(p) or len(f) != int(ok.sum()):
        return None
    if not np.array_equal(_canonical_faces(survivors[f]), _canonical_faces(mapped[ok])):
        return None
    index = np.full(n, -1, dtype=np.int64)
    index[survivors] = np.arange(len(survivors))
    label = index[root]
    if (label < 0).any():  # a vertex merged into one that later lost all its faces
        return None
    return _Level(faces=f, label=label, kept=survivors, positions=p)


def _problems_after(f: np.ndarray, num_vertices: int, euler: int) -> list[str]:
    problems = _mesh_problems(f, num_vertices)
    if not problems and _euler(f, num_vertices) != euler:
        problems = ["the topology changed (Euler characteristic)"]
    return problems


def _identity(points: np.ndarray, faces: np.ndarray) -> _Level:
    n = len(points)
    return _Level(faces=faces, label=np.arange(n), kept=np.arange(n), positions=points)


def _compose(first: _Level, then: _Level) -> _Level:
    """``then`` decimates the result of ``first``; the two steps as one."""
    return _Level(
        faces=then.faces,
        label=then.label[first.label],
        kept=first.kept[then.kept],
        positions=then.positions,
    )


def _collapse_into(state: _Level, keep: int, remove: int) -> _Level:
    """Half-edge collapse of vertex ``remove`` into its neighbour ``keep`` (positions unchanged)."""
    f = np.where(state.faces == remove, keep, state.faces)
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    label = np.arange(len(state.positions))
    label[remove] = keep
    label = label - (label > remove)
    return _Level(
        faces=f - (f > remove),
        label=label,
        kept=np.delete(np.arange(len(state.positions)), remove),
        positions=np.delete(state.positions, remove, axis=0),
    )


def _repair_collapse(faces: np.ndarray, i0: int, i1: int) -> tuple[int, int] | None:
    """A replacement for the collapse of ``i1`` into ``i0`` that folds the mesh (link condition broken).

    The usual cause is a vertex of valence 3 next to both ends of the edge (besides the two vertices
    opposite the edge): collapsing it into ``i0`` instead removes one vertex just the same and keeps
    the mesh manifold. Returns (keep, remove) or None.
    """
    n0 = set(faces[(faces == i0).any(axis=1)].ravel().tolist()) - {i0}
    n1 = set(faces[(faces == i1).any(axis=1)].ravel().tolist()) - {i1}
    for x in sorted(n0 & n1):
        around = faces[(faces == x).any(axis=1)]
        if len(around) == 3 and len(set(around.ravel().tolist())) == 4:
            return i0, x
    return None


def _decimate_staged(points: np.ndarray, faces: np.ndarray, target: int, modes: Sequence[tuple]):
    """Decimate to exactly ``target`` vertices; returns a _Level, or a string saying why not.

    The decimator stops at the first state with at most ``t`` faces; each collapse removes one vertex
    and at least one face, so the vertex count is non-decreasing in ``t``: bisect ``t`` for the exact
    count. Quadric edge collapse does not test the link condition, so a collapse can fold the mesh
    (duplicate faces, non-manifold edges). Then: find (by bisection) a valid state whose next collapse
    folds, replace that collapse by a safe one (:func:`_repair_collapse`), and restart the decimator from
    there with fresh quadrics. If no safe replacement is known, restart from the valid state with the
    next of ``modes`` instead: (aggressiveness, preserve_border) pairs, i.e. another collapse order, or
    open-boundary vertices kept (collapsing an edge between two of them can split the boundary).
    """
    modes = list(modes)
    mode = modes.pop(0)
    euler = _euler(faces, len(points))
    state = _identity(points, faces)  # relative to the input
    for _stage in range(_MAX_STAGES):
        cur = state.positions, state.faces
        n_faces = len(state.faces)
        cache: dict[int, tuple] = {}

        def run(t: int):
            if t not in cache:
                cache[t] = _run_decimation(*cur, t, mode)
            return cache[t]

        def valid(t: int) -> _Level | None:
            if t >= n_faces:
                return _identity(*cur)
            p, f, c = run(t)
            return None if _problems_after(f, len(p), euler) else _interpret(cur[1], p, f, c)

        lo, hi = 0, n_faces
        while lo < hi:
            mid = (lo + hi) // 2
            if (len(run(mid)[0]) if mid < n_faces else len(cur[0])) >= target:
                hi = mid
            else:
                lo = mid + 1
        reached = len(run(lo)[0]) if lo < n_faces else len(cur[0])
        if reached < target:
            return f"skipped from above {target} vertices to {reached}"
        step = valid(lo)
        if step is not None and reached == target:
            return _compose(state, step)
        if step is not None:  # the decimator gave up early (iteration limit): go on from there
            if reached < len(cur[0]):
                state = _compose(state, step)
                continue
            if not modes:
                return f"the decimator stops at {reached} vertices, not {target}"
            mode = modes.pop(0)
            continue
        # bisect for a valid state (hi) whose next collapse (at hi - 1) folds the mesh
        hi = n_faces
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if valid(mid) is None:
                lo = mid
            else:
                hi = mid
        good = valid(hi)
        i0, i1 = (int(good.label[x]) for x in run(hi - 1)[2][-1])
        repair = _repair_collapse(good.faces, i0, i1)
        fixed = _collapse_into(good, *repair) if repair is not None else None
        if fixed is not None and not _problems_after(fixed.faces, len(fixed.positions), euler):
            state = _compose(_compose(state, good), fixed)
        elif modes:
            state = _compose(state, good)
            mode = modes.pop(0)  # go on from the valid state in another way
        else:
            return "a collapse folds the mesh and no safe replacement was found"
    return f"still folding after {_MAX_STAGES} repairs"


def _decimate_exact(points: np.ndarray, faces: np.ndarray, target: int, level: int) -> _Level:
    """Quadric decimation of (points, faces) to exactly ``target`` vertices, keeping the mesh valid."""
    failures = []
    has_border = bool((np.unique(np.sort(_edges(faces), axis=1), axis=0, return_counts=True)[1] == 1).any())
    for k, agg in enumerate(_AGGRESSIVENESS):
        aggs = _AGGRESSIVENESS[k:] + _AGGRESSIVENESS[:k]
        modes = [(a, b) for a in aggs for b in ((False, True) if has_border else (False,))]
        result = _decimate_staged(points, faces, target, modes)
        if isinstance(result, _Level):
            return result
        failures.append(f"agg={agg:g}: {result}")
    raise ValueError(
        f"cannot decimate level {level} ({len(points)} vertices, {len(faces)} faces) to exactly {target} "
        "vertices as one clean connected component: " + " | ".join(failures)
    )


def _face_normals(tris: np.ndarray) -> np.ndarray:
    return np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])


def _choose_vertices(fine: np.ndarray, fine_faces: np.ndarray, lvl: _Level) -> np.ndarray:
    """A distinct fine vertex for every coarse vertex, minimising the up(down(x)) error.

    Greedy coordinate descent in a fixed order, from the decimator's kept vertices: for each coarse vertex
    in turn, take the candidate that most lowers the summed fine-vertex-to-coarse-surface distance. The
    candidates of coarse vertex j are the fine vertices merged into j and their fine neighbours, less
    those held by other coarse vertices. A choice that flips or flattens a coarse triangle (against the
    decimator's own geometry) is refused.
    """
    faces = lvl.faces
    sel = lvl.kept.copy()
    taken = np.zeros(len(fine), dtype=bool)
    taken[sel] = True
    adjacency = _adjacency(fine_faces, len(fine))
    candidates = []
    for members in lvl.members:
        around = adjacency[members].nonzero()[1] if len(members) else members
        candidates.append(np.union1d(members, around))
    ref_normals = _face_normals(lvl.positions[faces])
    ref_area = np.linalg.norm(ref_normals, axis=1)
    incident: list[list[int]] = [[] for _ in range(len(sel))]
    for t, tri in enumerate(faces.tolist()):
        for j in tri:
            incident[j].append(t)
    incident_arr = [np.asarray(x, dtype=np.int64) for x in incident]
    dist = _point_triangle_distances(fine, fine[sel][faces])
    nearest = np.argmin(dist, axis=1)
    rowmin = dist[np.arange(len(fine)), nearest]
    cost = float(rowmin.sum())
    tol = 1e-9 * cost
    for _ in range(_MAX_REFINE_PASSES):
        improved = False
        for j, pool in enumerate(candidates):
            cands = pool[~taken[pool]]
            tris_j = incident_arr[j]
            k = len(tris_j)
            # candidate triangles (C + 1, k, 3, 3): the incident triangles with vertex j moved to a
            # candidate (the last entry: where it is now)
            cands = np.append(cands, sel[j])
            pos = np.broadcast_to(fine[sel[faces[tris_j]]], (len(cands), k, 3, 3)).copy()
            local = faces[tris_j] == j  # (k, 3)
            pos[:, local] = fine[cands][:, None, :]
            n = np.cross(pos[..., 1, :] - pos[..., 0, :], pos[..., 2, :] - pos[..., 0, :])
            area = np.linalg.norm(n, axis=-1)
            cos = np.einsum("ckd,kd->ck", n, ref_normals[tris_j]) / np.maximum(
                area * ref_area[tris_j], 1e-300
            )
            # triangles flipped or flattened against the decimator's geometry: never more than now
            bad = ((cos < 0.2) | (area < 1e-3 * ref_area[tris_j])).sum(axis=1)
            fewer = bad[:-1] < bad[-1]
            valid = bad[:-1] <= bad[-1]
            cands, pos, fewer = cands[:-1][valid], pos[:-1][valid], fewer[valid]
            if len(cands) == 0:
                continue
            # best distance of every fine vertex to the triangles that do not move
            others = rowmin.copy()
            hit = np.isin(nearest, tris_j)
            if hit.any():
                rest = np.ones(len(faces), dtype=bool)
                rest[tris_j] = False
                sub = dist[hit][:, rest]
                others[hit] = sub.min(axis=1) if sub.shape[1] else np.inf
            # only fine vertices within reach of the moving triangles can change (bounding sphere test)
            pts = pos.reshape(-1, 3)
            centre = pts.mean(axis=0)
            radius = np.sqrt(((pts - centre) ** 2).sum(axis=1).max())
            near = np.flatnonzero(np.linalg.norm(fine - centre, axis=1) - radius < others)
            d_near = _point_triangle_distances(fine[near], pos.reshape(-1, 3, 3))
            d_near = d_near.reshape(len(near), len(cands), k)
            gain = (others[near, None] - np.minimum(others[near, None], d_near.min(axis=2))).sum(axis=0)
            totals = float(others.sum()) - gain
            if fewer.any():  # unfolding comes first
                totals = np.where(fewer, totals, np.inf)
            best = int(np.argmin(totals))  # first minimum: deterministic
            if fewer[best] or totals[best] < cost - tol:
                taken[sel[j]] = False
                sel[j] = cands[best]
                taken[sel[j]] = True
                dist[:, tris_j] = _point_triangle_distances(fine, pos[best])
                nearest = np.argmin(dist, axis=1)
                rowmin = dist[np.arange(len(fine)), nearest]
                cost = float(rowmin.sum())
                improved = True
        if not improved:
            break
    return sel


# ----------------------------------------------------------------------------------------------------------
# Topology
# ----------------------------------------------------------------------------------------------------------
def _sparse(rows, cols, values, shape) -> torch.Tensor:
    idx = torch.as_tensor(np.stack([rows, cols]).astype(np.int64))
    val = torch.as_tensor(np.asarray(values, dtype=np.float32))
    return torch.sparse_coo_tensor(
        idx, val, size=shape, dtype=torch.float32, check_invariants=True
    ).coalesce()


class Topology:
    """The mesh hierarchy of one template (see the module docstring).

    Attributes:
        vertices: list of L+1 float32 tensors (V_l, 3), template positions per level.
        faces: list of L+1 LongTensors (F_l, 3), counter-clockwise seen from outside.
        down: list of L sparse COO float32 tensors (V_{l+1}, V_l), one 1 per row.
        up: list of L sparse COO float32 tensors (V_l, V_{l+1}), 3 barycentric weights per row.
        template_hash: SHA-256 of the template (see :func:`template_hash`).
    """

    def __init__(
        self,
        vertices: Sequence[torch.Tensor],
        faces: Sequence[torch.Tensor],
        down: Sequence[torch.Tensor],
        up: Sequence[torch.Tensor],
        template_hash: str,
        spirals: dict | None = None,
    ):
        if not (len(vertices) == len(faces) == len(down) + 1 == len(up) + 1):
            raise ValueError(
                "vertices and faces need one entry per level and down/up one per pair of levels, got "
                f"{len(vertices)}, {len(faces)}, {len(down)}, {len(up)}"
            )
        self.vertices = list(vertices)
        self.faces = list(faces)
        self.down = list(down)
        self.up = list(up)
        self.template_hash = template_hash
        self._spirals: dict[tuple[int, int, int], torch.Tensor] = {}
        for key, value in (spirals or {}).items():
            level, length = key[0], key[1]
            dilation = key[2] if len(key) > 2 else 1
            self._spirals[(int(level), int(length), int(dilation))] = value

    @property
    def num_vertices(self) -> list[int]:
        """Vertex count per level, finest first, e.g. ``[778, 389, 195, 98, 49]``."""
        return [int(v.shape[0]) for v in self.vertices]

    @property
    def num_levels(self) -> int:
        """Number of levels, the template included."""
        return len(self.vertices)

    @property
    def stored_spirals(self) -> list[tuple[int, int, int]]:
        """(level, length, dilation) of the spirals held so far (stored or computed)."""
        return sorted(self._spirals)

    def spiral(self, level: int, length: int, dilation: int = 1) -> torch.Tensor:
        """Spiral sequences of a level: LongTensor (V_level, length), row i starts with i.

        Stored spirals are returned as they are; others are computed with
        :func:`handrecon.mesh.spiral_sequence` (deterministic) and kept for the next call.
        A shorter spiral is the prefix of a longer one with the same dilation.
        """
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise ValueError(f"level must be an int, got {level!r}")
        if not 0 <= level < self.num_levels:
            raise ValueError(f"level must be in [0, {self.num_levels}), got {level}")
        for name, value in (("length", length), ("dilation", dilation)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        key = (int(level), int(length), int(dilation))
        if key not in self._spirals:
            longer = [k for k in self._spirals if k[0] == key[0] and k[2] == key[2] and k[1] > key[1]]
            if longer:
                self._spirals[key] = self._spirals[min(longer)][:, : key[1]].contiguous()
            else:
                self._spirals[key] = spiral_sequence(
                    self.faces[level], self.num_vertices[level], key[1], key[2]
                ).to(self.faces[level].device)
        return self._spirals[key]

    def to(self, device) -> "Topology":
        """A copy with every tensor on ``device``."""
        return Topology(
            [v.to(device) for v in self.vertices],
            [f.to(device) for f in self.faces],
            [d.to(device) for d in self.down],
            [u.to(device) for u in self.up],
            self.template_hash,
            {k: s.to(device) for k, s in self._spirals.items()},
        )

    def __repr__(self) -> str:
        return (
            f"Topology(num_vertices={self.num_vertices}, "
            f"num_faces={[int(f.shape[0]) for f in self.faces]}, template={self.template_hash[:12]})"
        )


def build_topology(
    vertices,
    faces,
    num_vertices: Sequence[int] = DEFAULT_NUM_VERTICES,
    spiral_lengths: Iterable[int] = DEFAULT_SPIRAL_LENGTHS,
    spiral_levels: Iterable[int] | None = None,
) -> Topology:
    """Build the mesh hierarchy of a template.

    Args:
        vertices: (V, 3) float array or tensor, the template (any unit; rounded to float32 first, so the
            result depends only on :func:`template_hash`).
        faces: (F, 3) integer array or tensor; one connected, edge-manifold, consistently wound triangle
            mesh (closed, or with boundary), every vertex used.
        num_vertices: vertex counts of the coarse levels, strictly decreasing and below V.
        spiral_lengths: spiral lengths computed up front (dilation 1) for every level in ``spiral_levels``.
        spiral_levels: levels that get spirals up front (default: all but the coarsest).

    Returns:
        A :class:`Topology` with ``num_vertices == [V, *num_vertices]``.

    Raises:
        ValueError: on bad shapes, an invalid template mesh, or a level that cannot be reached exactly.
    """
    v = _check_vertices(vertices)
    f = _check_faces(faces, len(v))
    try:
        counts = [int(n) for n in num_vertices]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"num_vertices must be a sequence of ints, got {num_vertices!r}") from exc
    if not counts:
        raise ValueError("num_vertices must name at least one coarse level")
    if any(b >= a for a, b in zip([len(v)] + counts, counts)) or counts[-1] < 4:
        raise ValueError(
            f"num_vertices must be strictly decreasing, below V={len(v)} and at least 4, got {counts}"
        )
    problems = _mesh_problems(f, len(v))
    if problems:
        raise ValueError("faces do not describe a valid template mesh: " + "; ".join(problems))
    v = v.astype(np.float32).astype(np.float64)  # the result depends only on the hashed template
    digest = template_hash(v, f)

    level_vertices, level_faces, downs, ups = [v], [f], [], []
    for level, target in enumerate(counts):
        fine, fine_faces = level_vertices[-1], level_faces[-1]
        lvl = _decimate_exact(fine, fine_faces, target, level)
        sel = _choose_vertices(fine, fine_faces, lvl)
        coarse = fine[sel]
        downs.append(_sparse(np.arange(target), sel, np.ones(target), (target, len(fine))))
        rows, cols, w = _upsampling(fine, coarse, lvl.faces)
        ups.append(_sparse(rows, cols, w, (len(fine), target)))
        level_vertices.append(coarse)
        level_faces.append(lvl.faces)

    topo = Topology(
        [torch.as_tensor(x.astype(np.float32)) for x in level_vertices],
        [torch.as_tensor(x.astype(np.int64)) for x in level_faces],
        downs,
        ups,
        digest,
    )
    levels = range(len(level_vertices) - 1) if spiral_levels is None else spiral_levels
    lengths = sorted({int(n) for n in spiral_lengths})
    for level in levels:
        if lengths:
            longest = topo.spiral(int(level), lengths[-1])
            for n in lengths[:-1]:
                topo._spirals[(int(level), n, 1)] = longest[:, :n].contiguous()
    return topo


# ----------------------------------------------------------------------------------------------------------
# quality
# ----------------------------------------------------------------------------------------------------------
class ReconstructionErrors(NamedTuple):
    """Mean vertex errors of up(down(x)), in the unit of the input vertices."""

    per_level: list[float]  # per_level[l]: level l -> l+1 -> l, on the level-l vertices down(...)(x)
    all_levels: float  # down through every level, then up through every level, against x


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sparse (N, M) applied to x (B, M, 3) -> (B, N, 3)."""
    return torch.stack([torch.sparse.mm(matrix, xi) for xi in x])


def reconstruction_errors(topology: Topology, vertices) -> ReconstructionErrors:
    """How much the hierarchy loses: mean Euclidean error of up(down(x)), per level and through all.

    Args:
        topology: a :class:`Topology`.
        vertices: (V_0, 3) or (B, V_0, 3) array or tensor, e.g. the template or posed meshes.

    Returns:
        :class:`ReconstructionErrors` with ``per_level`` (one float per pair of levels) and
        ``all_levels`` (down L times, up L times), averaged over vertices (and the batch).
    """
    x = vertices if isinstance(vertices, torch.Tensor) else torch.as_tensor(np.asarray(vertices))
    v0 = topology.num_vertices[0]
    if x.ndim not in (2, 3) or tuple(x.shape[-2:]) != (v0, 3):
        raise ValueError(f"vertices must have shape ({v0}, 3) or (B, {v0}, 3), got {tuple(x.shape)}")
    device = topology.down[0].device
    x = x.detach().to(device=device, dtype=torch.float64)
    if x.ndim == 2:
        x = x[None]
    down = [d.to(torch.float64) for d in topology.down]
    up = [u.to(torch.float64) for u in topology.up]
    per_level = []
    cur = x
    for d, u in zip(down, up):
        coarse = _apply(d, cur)
        per_level.append(float((_apply(u, coarse) - cur).norm(dim=-1).mean()))
        cur = coarse
    for u in reversed(up):
        cur = _apply(u, cur)
    return ReconstructionErrors(per_level, float((cur - x).norm(dim=-1).mean()))


# ----------------------------------------------------------------------------------------------------------
# files and cache
# ----------------------------------------------------------------------------------------------------------
def save_topology(topology: Topology, path) -> Path:
    """Write a topology to a safetensors file, atomically (temp file + rename).

    The metadata holds ``format_version``, ``template_sha256`` and ``num_vertices``; the tensors are the
    level vertices and faces, the down/up matrices (indices and values) and every spiral held.
    """
    from safetensors.torch import save_file

    if not isinstance(topology, Topology):
        raise ValueError(f"topology must be a Topology, got {type(topology).__name__}")
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for l, (v, f) in enumerate(zip(topology.vertices, topology.faces)):
        tensors[f"vertices.{l}"] = v.detach().cpu().to(torch.float32).contiguous()
        tensors[f"faces.{l}"] = f.detach().cpu().to(torch.int64).contiguous()
    for name, mats in (("down", topology.down), ("up", topology.up)):
        for l, m in enumerate(mats):
            m = m.detach().cpu().coalesce()
            tensors[f"{name}.{l}.indices"] = m.indices().to(torch.int64).contiguous()
            tensors[f"{name}.{l}.values"] = m.values().to(torch.float32).contiguous()
    spirals = []
    for (level, length, dilation), s in sorted(topology._spirals.items()):
        tensors[f"spiral.{level}.{length}.{dilation}"] = s.detach().cpu().to(torch.int64).contiguous()
        spirals.append([level, length, dilation])
    metadata = {
        "format_version": FORMAT_VERSION,
        "template_sha256": topology.template_hash,
        "num_vertices": json.dumps(topology.num_vertices),
        "spirals": json.dumps(spirals),
        "generator": "handrecon.mesh.topology.build_topology",
    }
    with atomic_path(path, suffix=".tmp") as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def _read_metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def load_topology_file(path) -> Topology:
    """Read a topology written by :func:`save_topology`.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if the file is not a complete topology of this ``FORMAT_VERSION``, or its level-0
            template does not hash to its ``template_sha256``.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no topology file at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types on a damaged file
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has topology format_version {version!r}, this handrecon reads {FORMAT_VERSION!r}"
        )
    try:
        counts = json.loads(meta["num_vertices"])
        levels = len(counts)
        vertices = [tensors[f"vertices.{l}"] for l in range(levels)]
        faces = [tensors[f"faces.{l}"] for l in range(levels)]
        down, up = [], []
        for l in range(levels - 1):
            for name, out, shape in (
                ("down", down, (counts[l + 1], counts[l])),
                ("up", up, (counts[l], counts[l + 1])),
            ):
                out.append(
                    torch.sparse_coo_tensor(
                        tensors[f"{name}.{l}.indices"],
                        tensors[f"{name}.{l}.values"],
                        shape,
                        check_invariants=True,
                    ).coalesce()
                )
        spirals = {
            tuple(key): tensors["spiral.{}.{}.{}".format(*key)] for key in json.loads(meta["spirals"])
        }
        digest = meta["template_sha256"]
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        raise ValueError(f"{path} is not a complete topology file: {exc}") from exc
    if template_hash(vertices[0], faces[0]) != digest:
        raise ValueError(f"{path} is damaged: its template does not match its template_sha256")
    return Topology(vertices, faces, down, up, digest, spirals)


def _template_of(hand) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(hand, (tuple, list)):
        if len(hand) != 2:
            raise ValueError(f"hand as a tuple must be (vertices, faces), got {len(hand)} items")
        vertices, faces = hand
    elif hasattr(hand, "v_template") and hasattr(hand, "faces"):
        vertices, faces = hand.v_template, hand.faces
    else:
        raise ValueError(
            "hand must have attributes v_template (V, 3) and faces (F, 3), or be a (vertices, faces) "
            f"tuple; got {type(hand).__name__}"
        )
    v = _check_vertices(vertices, "hand vertices (v_template)")
    return v, _check_faces(faces, len(v), "hand faces")


def _bundled_asset():
    try:
        return importlib.resources.files("handrecon.assets").joinpath(BUNDLED_ASSET)
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        return None


def default_cache_dir() -> Path:
    """``$HANDRECON_CACHE/topology`` if HANDRECON_CACHE is set, else ``~/.cache/handrecon/topology``."""
    root = os.environ.get("HANDRECON_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "handrecon"
    return base / "topology"


def _usable(path, digest: str) -> bool:
    """Whether a file holds the default hierarchy of this template, in this format."""
    try:
        meta = _read_metadata(path)
        return (
            meta.get("format_version") == FORMAT_VERSION
            and meta.get("template_sha256") == digest
            and json.loads(meta["num_vertices"])[1:] == list(DEFAULT_NUM_VERTICES)
        )
    except Exception:  # unreadable, or metadata missing or malformed
        return False


def load_topology(hand, cache_dir=None) -> Topology:
    """The topology of a hand model's template: bundled asset, else disk cache, else built and cached.

    Args:
        hand: an object with ``v_template`` (V, 3) and ``faces`` (F, 3) (tensors or arrays), e.g. a
            ``HandModel``, or a ``(vertices, faces)`` tuple.
        cache_dir: folder of cached topologies (default :func:`default_cache_dir`).

    Returns:
        A :class:`Topology` with the default levels (``DEFAULT_NUM_VERTICES``) and spirals.
    """
    vertices, faces = _template_of(hand)
    digest = template_hash(vertices, faces)
    bundled = _bundled_asset()
    if bundled is not None and bundled.is_file():
        with importlib.resources.as_file(bundled) as path:
            if _usable(path, digest):
                return load_topology_file(path)
    cache = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"{digest}.safetensors"
    if cache.is_file():
        if _usable(cache, digest):
            try:
                return load_topology_file(cache)
            except ValueError:
                pass
        warnings.warn(f"rebuilding the stale or damaged topology cache {cache}", stacklevel=2)
    topo = build_topology(vertices, faces)
    try:
        save_topology(topo, cache)
    except OSError as exc:
        warnings.warn(f"could not cache the topology at {cache}: {exc}", stacklevel=2)
    return topo
