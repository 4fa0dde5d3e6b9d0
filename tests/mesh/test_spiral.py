"""Spiral sequences (handrecon.mesh.spiral)."""

import numpy as np
import pytest
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from handrecon.mesh import spiral_sequence
from handrecon.mesh.spiral import vertex_rotations


def bumpy_sphere():
    """A closed mesh (valences 5 and 6) with 162 vertices."""
    ico = trimesh.creation.icosphere(subdivisions=2)
    v = ico.vertices * np.array([1.0, 0.8, 0.6]) + 0.05 * np.sin(5 * ico.vertices[:, [1, 2, 0]])
    return v, np.asarray(ico.faces, dtype=np.int64)


def graph_distances(faces, n):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    a = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    return shortest_path(a + a.T, unweighted=True, directed=False)


def oriented_faces(faces):
    out = set()
    for a, b, c in faces.tolist():
        out |= {(a, b, c), (b, c, a), (c, a, b)}
    return out


@pytest.fixture(scope="module")
def mesh():
    return bumpy_sphere()


def test_rows_start_with_their_vertex_then_the_1_ring_counter_clockwise(mesh):
    v, f = mesh
    n = len(v)
    s = spiral_sequence(f, n, 27)
    assert s.dtype == torch.int64 and s.shape == (n, 27)
    assert torch.equal(s[:, 0], torch.arange(n))
    assert int(s.min()) >= 0 and int(s.max()) < n
    dist = graph_distances(f, n)
    ccw = oriented_faces(f)
    for i, row in enumerate(s.tolist()):
        ring = set(np.flatnonzero(dist[i] == 1).tolist())
        deg = len(ring)
        assert set(row[1 : 1 + deg]) == ring
        assert row[1] == min(ring)  # the documented start: the lowest-index neighbour
        # consecutive 1-ring entries (and last -> first) span a face with the centre, wound as the mesh
        for k in range(deg):
            assert (i, row[1 + k], row[1 + (k + 1) % deg]) in ccw
        # ring by ring: graph distance never decreases along the row, and entries are distinct
        d = dist[i, row]
        assert np.all(np.diff(d) >= 0)
        assert len(set(row)) == len(row)


def test_outer_rings_turn_the_same_way(mesh):
    v, f = mesh
    n = len(v)
    s = spiral_sequence(f, n, 40).numpy()
    dist = graph_distances(f, n)
    ccw = oriented_faces(f)
    adjacent = consecutive = 0
    for i, row in enumerate(s):
        deg = int((dist[i] == 1).sum())
        ring2 = [x for x in row if dist[i, x] == 2]
        for a, b in zip(ring2, ring2[1:]):
            consecutive += 1
            adjacent += dist[a, b] == 1
        # the 2-ring goes on where the 1-ring ended: it starts with the vertex across the edge from the
        # first 1-ring entry to the last one
        assert (row[1], row[deg], ring2[0]) in ccw
    assert adjacent / consecutive > 0.9  # a ring is walked around, not visited in index order


def test_length_prefix_dilation_and_determinism(mesh):
    v, f = mesh
    n = len(v)
    s27 = spiral_sequence(f, n, 27)
    assert torch.equal(spiral_sequence(f, n, 9), s27[:, :9])
    assert torch.equal(spiral_sequence(f, n, 18), s27[:, :18])
    assert torch.equal(spiral_sequence(torch.as_tensor(f), n, 27), s27)
    assert torch.equal(spiral_sequence(f, n, 9, dilation=3), s27[:, ::3])
    assert torch.equal(spiral_sequence(f, n, 5, dilation=2), s27[:, :10:2])


def test_short_meshes_are_filled_with_nearest_vertices_never_minus_one():
    box = trimesh.creation.box()  # 8 vertices, closed
    f = np.asarray(box.faces, dtype=np.int64)
    n = len(box.vertices)
    s = spiral_sequence(f, n, 20)
    dist = graph_distances(f, n)
    for i, row in enumerate(s.tolist()):
        assert row[0] == i and min(row) >= 0
        assert set(row[:n]) == set(range(n))  # every vertex once, nearest rings first
        fill = row[n:]
        others = sorted(range(n), key=lambda x: (dist[i, x], x))[1:]  # by graph distance, then index
        assert fill == [others[k % len(others)] for k in range(len(fill))]
    # an isolated vertex repeats itself
    s = spiral_sequence(np.array([[0, 1, 2]]), 4, 3)
    assert s[3].tolist() == [3, 3, 3]


def test_open_fans_start_at_the_boundary():
    # a square grid 4x4: boundary vertices have open fans
    n = 4
    idx = np.arange(n * n).reshape(n, n)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = idx[r, c], idx[r, c + 1], idx[r + 1, c], idx[r + 1, c + 1]
            faces += [[a, b, e], [a, e, d]]
    faces = np.array(faces)
    rot = vertex_rotations(faces, n * n)
    ccw = oriented_faces(faces)
    for vtx in range(n * n):
        ring = rot[vtx]
        # the fan is walked from its start without a gap: consecutive entries span faces
        for a, b in zip(ring, ring[1:]):
            assert (vtx, a, b) in ccw
    s = spiral_sequence(faces, n * n, 16)
    assert torch.equal(s[:, 0], torch.arange(n * n))
    assert all(len(set(row)) == 16 for row in s.tolist())  # the whole grid, each vertex once


def test_bad_inputs():
    f = np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"faces must have shape \(F, 3\)"):
        spiral_sequence(np.array([0, 1, 2]), 3, 9)
    with pytest.raises(ValueError, match="faces refer to vertex 2"):
        spiral_sequence(f, 2, 9)
    with pytest.raises(ValueError, match="non-negative"):
        spiral_sequence(-f, 3, 9)
    with pytest.raises(ValueError, match="length"):
        spiral_sequence(f, 3, 0)
    with pytest.raises(ValueError, match="dilation"):
        spiral_sequence(f, 3, 9, dilation=0)
    with pytest.raises(ValueError, match="num_vertices"):
        spiral_sequence(f, 0, 9)
