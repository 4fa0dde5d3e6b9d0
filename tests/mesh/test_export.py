"""Mesh file export (handrecon.mesh.export)."""

import os

import numpy as np
import pytest
import torch
import trimesh

from handrecon.mesh import save_mesh


@pytest.fixture()
def mesh():
    m = trimesh.creation.icosphere(subdivisions=2)
    return np.asarray(m.vertices), np.asarray(m.faces, dtype=np.int64)


def load(path):
    loaded = trimesh.load(path, process=False, force="mesh")
    return np.asarray(loaded.vertices), np.asarray(loaded.faces), loaded


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb", ".PLY"])
def test_round_trip_by_suffix(tmp_path, mesh, suffix):
    v, f = mesh
    path = save_mesh(tmp_path / f"hand{suffix}", v, f)
    assert path == tmp_path / f"hand{suffix}"
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temp file left behind
    lv, lf, _ = load(path)
    assert lv.shape == v.shape and lf.shape == f.shape
    np.testing.assert_allclose(lv, v, atol=1e-6)
    np.testing.assert_array_equal(lf, f)


def test_torch_inputs_and_vertex_colors(tmp_path, mesh):
    v, f = mesh
    colors = np.zeros((len(v), 3))
    colors[:, 0] = 1.0  # red
    path = save_mesh(tmp_path / "out" / "red.ply", torch.as_tensor(v, dtype=torch.float32),
                     torch.as_tensor(f), vertex_colors=torch.as_tensor(colors))
    _, _, loaded = load(path)
    rgba = np.asarray(loaded.visual.vertex_colors)
    assert rgba.shape == (len(v), 4)
    assert np.all(rgba == [255, 0, 0, 255])
    # uint8 RGBA is taken as it is
    path = save_mesh(tmp_path / "blue.glb", v, f, vertex_colors=np.tile([0, 0, 255, 128], (len(v), 1)))
    _, _, loaded = load(path)
    assert np.all(np.asarray(loaded.visual.vertex_colors) == [0, 0, 255, 128])


def test_an_existing_file_is_replaced_whole(tmp_path, mesh):
    v, f = mesh
    path = tmp_path / "m.obj"
    path.write_text("old contents")
    save_mesh(path, v, f)
    assert len(load(path)[0]) == len(v)


def test_bad_inputs_are_refused_and_nothing_is_written(tmp_path, mesh):
    v, f = mesh
    with pytest.raises(ValueError, match="path must end in one of"):
        save_mesh(tmp_path / "m.stl", v, f)
    with pytest.raises(ValueError, match=r"vertices must have shape \(V, 3\)"):
        save_mesh(tmp_path / "m.obj", v[:, :2], f)
    bad = v.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="vertices must be finite"):
        save_mesh(tmp_path / "m.obj", bad, f)
    with pytest.raises(ValueError, match=r"faces must have shape \(F, 3\)"):
        save_mesh(tmp_path / "m.obj", v, f[:, :2])
    with pytest.raises(ValueError, match="faces must index vertices"):
        save_mesh(tmp_path / "m.obj", v, f + len(v))
    with pytest.raises(ValueError, match="faces must hold integer"):
        save_mesh(tmp_path / "m.obj", v, f.astype(np.float64))
    with pytest.raises(ValueError, match="vertex_colors must have shape"):
        save_mesh(tmp_path / "m.ply", v, f, vertex_colors=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"vertex_colors must lie in \[0, 1\]"):
        save_mesh(tmp_path / "m.ply", v, f, vertex_colors=np.full((len(v), 3), 2.0))
    with pytest.raises(ValueError, match="vertex_colors must be finite"):
        save_mesh(tmp_path / "m.ply", v, f, vertex_colors=np.full((len(v), 3), np.nan))
    assert os.listdir(tmp_path) == []


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from handrecon.fileio import atomic_path

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            open(tmp, "w").write("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
