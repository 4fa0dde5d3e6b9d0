"""Headless renderer: pixel convention, depth, ids, occlusion, background, shading, fork safety, input checks.

Runs on Mesa's llvmpipe through EGL; EGL is a requirement, so these tests fail (with the RendererUnavailable
message naming the Debian packages) rather than skip when it is missing.
"""

import multiprocessing
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from scipy.ndimage import binary_dilation, minimum_filter

from handrecon.hand import load_hand_model
from handrecon.render.renderer import (
    Light,
    Lighting,
    Mesh,
    Renderer,
    RendererUnavailable,
    cavity_occlusion,
    projection_from_K,
    vertex_normals,
)

W, H = 224, 224
K224 = np.array([[400.0, 0.0, 111.5], [0.0, 400.0, 111.5], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def renderer():
    return Renderer(W, H)


@pytest.fixture(scope="module")
def hand_mesh():
    hand = load_hand_model("open")
    out = hand(hand.named_pose("relaxed")[None])
    v = out.vertices[0].detach().numpy().astype(np.float64)
    v = v - (v.max(0) + v.min(0)) / 2 + np.array([0.0, 0.0, 0.5])  # 0.5 m in front of the camera
    return v, hand.faces.numpy()


def project(v, K):
    uvw = v @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def quad(x0, x1, y0, y1, z):
    """Two triangles covering the axis-aligned rectangle [x0,x1] x [y0,y1] at depth z (camera space)."""
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=np.float64)
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_hand_vertices_project_inside_the_rendered_silhouette(renderer, hand_mesh):
    v, f = hand_mesh
    res = renderer.render(Mesh(v, f), K224)
    mask = res.mask(0)
    assert res.rgb.shape == (H, W, 3) and res.rgb.dtype == np.uint8
    assert res.ids.shape == (H, W) and res.depth.shape == (H, W) and res.depth.dtype == np.float32
    assert mask.sum() > 1000
    uv = np.rint(project(v, K224)).astype(int)
    assert (uv >= 0).all() and (uv[:, 0] < W).all() and (uv[:, 1] < H).all()
    inside = binary_dilation(mask, iterations=1)[uv[:, 1], uv[:, 0]]
    assert inside.mean() >= 0.97
    # the rendered silhouette is lit skin, background stays black
    assert res.rgb[mask].mean() > 60 and (res.rgb[~mask] == 0).all()


def test_depth_is_metric_z_of_the_visible_surface(renderer, hand_mesh):
    v, f = hand_mesh
    res = renderer.render(Mesh(v, f), K224)
    mask = res.mask()
    z = res.depth[mask]
    assert z.min() >= v[:, 2].min() - 1e-5 and z.max() <= v[:, 2].max() + 1e-5
    assert (res.depth[~mask] == 0).all() and (res.ids[~mask] == -1).all()
    # no vertex lies in front of the rendered (nearest) surface around its pixel: hidden ones lie behind it
    near = minimum_filter(np.where(mask, res.depth, np.inf), size=3)
    uv = np.rint(project(v, K224)).astype(int)
    d = near[uv[:, 1], uv[:, 0]]
    assert np.isfinite(d).mean() > 0.97
    assert (v[:, 2] >= d - 1e-4).mean() > 0.99
    on = np.abs(v[:, 2] - res.depth[uv[:, 1], uv[:, 0]]) < 2e-3
    assert on.mean() > 0.2  # and the visible ones (about a quarter in this side view) are on it


def test_plane_depth_is_exactly_linear_and_fronto_parallel_depth_exact(renderer):
    # fronto-parallel square at z = 0.7: every covered pixel reads 0.7 (float32)
    v, f = quad(-0.1, 0.1, -0.1, 0.1, 0.7)
    res = renderer.render(Mesh(v, f), K224)
    assert res.mask(0).sum() > 1000
    np.testing.assert_allclose(res.depth[res.mask(0)], np.float32(0.7), rtol=0, atol=2e-7)
    # tilted plane z = 0.6 + 0.5 x: depth at pixel (u, v) = 0.6 / (1 - 0.5 (u - cx) / fx)
    v = np.array([[-0.2, -0.2, 0.5], [0.2, -0.2, 0.7], [0.2, 0.2, 0.7], [-0.2, 0.2, 0.5]])
    res = renderer.render(Mesh(v, np.array([[0, 1, 2], [0, 2, 3]])), K224)
    rows, cols = np.nonzero(res.mask(0))
    expected = 0.6 / (1.0 - 0.5 * (cols - K224[0, 2]) / K224[0, 0])
    np.testing.assert_allclose(res.depth[rows, cols], expected, rtol=2e-6)


def test_pixel_convention_centres_at_integers_and_vertices_land_in_round_u():
    # a rectangle spanning u in [9.7, 14.3], v in [4.2, 7.8] covers exactly the pixels whose (integer)
    # centres are inside: columns 10..14, rows 5..7
    K = np.array([[100.0, 0.0, 15.5], [0.0, 120.0, 11.0], [0.0, 0.0, 1.0]])
    z = 2.0
    u0, u1, v0, v1 = 9.7, 14.3, 4.2, 7.8
    x0, x1 = (u0 - K[0, 2]) * z / K[0, 0], (u1 - K[0, 2]) * z / K[0, 0]
    y0, y1 = (v0 - K[1, 2]) * z / K[1, 1], (v1 - K[1, 2]) * z / K[1, 1]
    r = Renderer(32, 24)
    res = r.render(Mesh(*quad(x0, x1, y0, y1, z)), K)
    expected = np.zeros((24, 32), bool)
    expected[5:8, 10:15] = True
    np.testing.assert_array_equal(res.mask(0), expected)
    # the projection matrix sends u to GL window x = u + 0.5 and v to window y = v + 0.5 (row v from the top)
    P = projection_from_K(K, (32, 24))
    X = np.array([0.3, -0.2, 1.7, 1.0])
    clip = P @ X
    u, v = project(X[None, :3], K)[0]
    assert np.isclose((clip[0] / clip[3] + 1) / 2 * 32, u + 0.5)
    assert np.isclose((clip[1] / clip[3] + 1) / 2 * 24, v + 0.5)


def test_image_orientation_y_down_x_right(renderer):
    v, f = quad(-0.02, 0.02, -0.02, 0.02, 1.0)
    below = renderer.render(Mesh(v + [0.0, 0.15, 0.0], f), K224).mask(0)
    rows, cols = np.nonzero(below)
    assert rows.min() > H // 2 and abs(cols.mean() - K224[0, 2]) < 1.0  # +y camera = bottom half
    right = renderer.render(Mesh(v + [0.15, 0.0, 0.0], f), K224).mask(0)
    rows, cols = np.nonzero(right)
    assert cols.min() > W // 2 and abs(rows.mean() - K224[1, 2]) < 1.0  # +x camera = right half


def test_nearer_mesh_occludes_farther_in_ids_depth_and_colour(renderer):
    far = Mesh(*quad(-0.1, 0.1, -0.1, 0.1, 1.0), color=(0.0, 0.0, 1.0), id=3)
    near = Mesh(*quad(-0.05, 0.05, -0.05, 0.05, 0.8), color=(1.0, 0.0, 0.0), id=7)
    for order in ([far, near], [near, far]):
        res = renderer.render(order, K224)
        assert set(np.unique(res.ids)) == {-1, 3, 7}
        c = int(K224[1, 2] + 0.5)
        assert res.ids[c, c] == 7 and res.depth[c, c] == np.float32(0.8)
        assert res.rgb[c, c, 0] > 50 and res.rgb[c, c, 2] == 0
        ring = res.mask(3)
        assert ring.sum() > 0 and np.allclose(res.depth[ring], 1.0)
        assert not (res.mask(3) & res.mask(7)).any()
    # meshes sharing an id share a label
    res = renderer.render([Mesh(*quad(-0.1, -0.05, -0.02, 0.02, 1.0), id=1),
                           Mesh(*quad(0.05, 0.1, -0.02, 0.02, 1.0), id=1)], K224)
    left, right = res.mask(1)[:, :W // 2], res.mask(1)[:, W // 2:]
    assert left.any() and right.any()


def test_background_image_and_colour_are_kept_outside_the_mesh(renderer, hand_mesh):
    v, f = hand_mesh
    bg = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    keep = bg.copy()
    res = renderer.render(Mesh(v, f), K224, background=bg)
    mask = res.mask()
    np.testing.assert_array_equal(res.rgb[~mask], bg[~mask])
    assert (res.rgb[mask] != bg[mask]).any(axis=1).mean() > 0.9
    np.testing.assert_array_equal(bg, keep)
    # size taken from the background image when not given
    small = Renderer(16, 16).render(Mesh(v, f), K224, background=bg)
    assert small.rgb.shape == (H, W, 3)
    res = renderer.render(Mesh(v, f), K224, background=(10, 200, 30))
    assert (res.rgb[~res.mask()] == [10, 200, 30]).all()


def test_outputs_can_be_skipped_and_sizes_change(renderer, hand_mesh):
    v, f = hand_mesh
    res = renderer.render(Mesh(v, f), K224, rgb=False, depth=False)
    assert res.rgb is None and res.depth is None and res.ids.shape == (H, W)
    res = renderer.render(Mesh(v, f), K224, ids=False)
    assert res.ids is None and res.rgb is not None
    with pytest.raises(ValueError, match="ids"):
        res.mask(0)
    a = renderer.render(Mesh(v, f), K224)
    half = np.diag([0.5, 0.5, 1.0]) @ K224
    b = renderer.render(Mesh(v, f), half, size=(112, 100))
    assert b.rgb.shape == (100, 112, 3) and b.ids.shape == (100, 112)
    assert abs(b.mask().sum() * 4 - a.mask().sum()) < 0.1 * a.mask().sum()
    c = renderer.render(Mesh(v, f), K224)
    for x, y in ((a.rgb, c.rgb), (a.ids, c.ids), (a.depth, c.depth)):
        np.testing.assert_array_equal(x, y)  # deterministic, buffers reused correctly
    empty = renderer.render([], K224)
    assert (empty.ids == -1).all() and (empty.depth == 0).all() and (empty.rgb == 0).all()


@pytest.mark.parametrize("shading", ["vertex", "pixel"])
def test_outward_normals_are_lit_and_back_faces_are_shaded_double_sided(shading):
    r = Renderer(64, 64, shading=shading)
    K = np.array([[80.0, 0.0, 31.5], [0.0, 80.0, 31.5], [0.0, 0.0, 1.0]])
    head = Lighting(ambient=(0.0, 0.0, 0.0), lights=[Light((0.0, 0.0, 1.0), (1.0, 1.0, 1.0))])
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.2)
    v = sphere.vertices + [0.0, 0.0, 1.0]
    res = r.render(Mesh(v, sphere.faces, color=(0.5, 0.5, 0.5)), K, lights=head)
    centre = res.rgb[31:33, 31:33, 0].astype(float).mean()
    assert abs(centre - 127) <= 3  # n.l = 1 at the centre: albedo * light
    rim = res.mask(0) & binary_dilation(~res.mask(0), iterations=2)
    assert res.rgb[rim, 0].mean() < centre - 40  # grazing light at the rim
    # inside-out faces (reversed winding) look the same: double-sided shading
    flipped = r.render(Mesh(v, sphere.faces[:, ::-1], color=(0.5, 0.5, 0.5)), K, lights=head)
    np.testing.assert_allclose(flipped.rgb.astype(float), res.rgb.astype(float), atol=2)


def test_hand_mesh_normals_point_outwards(hand_mesh):
    v, f = hand_mesh
    n = vertex_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    tri = v[f]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted, the slow way
    ref = np.zeros_like(v)
    for k in range(3):
        np.add.at(ref, f[:, k], fn)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(n, ref, atol=1e-4)
    tm = trimesh.Trimesh(v, f, process=False)
    assert tm.is_watertight and tm.volume > 0  # closed and outward: trimesh's convention is ours
    assert ((n * tm.vertex_normals).sum(1) > 0.9).mean() > 0.98
    sphere = trimesh.creation.icosphere(subdivisions=2)
    np.testing.assert_allclose(vertex_normals(sphere.vertices, sphere.faces), sphere.vertices, atol=3e-2)
    ao = cavity_occlusion(v, f)
    assert ao.shape == (len(v),) and ao.min() > 0 and ao.max() <= 1 and ao.min() < 0.9
    sphere = trimesh.creation.icosphere(subdivisions=2)
    assert cavity_occlusion(sphere.vertices, sphere.faces).min() > 0.999  # convex: no occlusion


def test_texture_noise_varies_albedo_with_the_seed(hand_mesh):
    v, f = hand_mesh
    r = Renderer(W, H, shading="pixel")
    plain = r.render(Mesh(v, f), K224).rgb.astype(int)
    a = r.render(Mesh(v, f, texture_noise=0.3, noise_seed=1), K224)
    b = r.render(Mesh(v, f, texture_noise=0.3, noise_seed=2), K224)
    m = a.mask()
    assert np.abs(a.rgb.astype(int) - plain)[m].mean() > 3
    assert np.abs(a.rgb.astype(int) - b.rgb.astype(int))[m].mean() > 3
    np.testing.assert_array_equal(a.ids, b.ids)
    again = r.render(Mesh(v, f, texture_noise=0.3, noise_seed=1), K224)
    np.testing.assert_array_equal(again.rgb, a.rgb)
    spec = r.render(Mesh(v, f, specular=0.8, shininess=16), K224).rgb.astype(int)
    assert (spec >= plain - 1).all() and (spec > plain + 20).any()
    fast = Renderer(W, H).render(Mesh(v, f, texture_noise=0.3, noise_seed=1), K224)
    assert np.abs(fast.rgb.astype(int) - plain)[m].mean() > 1


def test_multisampling_smooths_colour_but_keeps_exact_ids_and_depth(renderer, hand_mesh):
    v, f = hand_mesh
    ref = renderer.render(Mesh(v, f), K224)
    res = Renderer(W, H, samples=4).render(Mesh(v, f), K224)
    np.testing.assert_array_equal(res.ids, ref.ids)
    np.testing.assert_array_equal(res.depth, ref.depth)
    diff = np.abs(res.rgb.astype(int) - ref.rgb).max(2)
    outline = binary_dilation(ref.mask(), iterations=1) & binary_dilation(~ref.mask(), iterations=1)
    assert (diff[outline] > 10).mean() > 0.3  # anti-aliased silhouette
    assert (diff[~binary_dilation(outline, iterations=1)] == 0).mean() > 0.95  # the rest as before


def _render_in_child(r):
    K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 31.5], [0.0, 0.0, 1.0]])
    v, f = quad(-0.1, 0.1, -0.1, 0.1, 1.0)
    return int(r.render(Mesh(v, f), K).mask(0).sum()), os.getpid()


def test_renderer_used_before_fork_works_in_forked_workers_and_parent_and_pickles():
    r = Renderer(64, 64)
    n = _render_in_child(r)[0]
    assert n == 400
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_render_in_child, [r, r, r]).get(timeout=60)
    assert [g[0] for g in got] == [n] * 3 and all(pid != os.getpid() for _, pid in got)
    assert _render_in_child(r)[0] == n
    assert _render_in_child(pickle.loads(pickle.dumps(r)))[0] == n


def test_renderer_works_from_another_thread():
    from concurrent.futures import ThreadPoolExecutor

    r = Renderer(64, 64)
    n = _render_in_child(r)[0]
    with ThreadPoolExecutor(1) as ex:
        assert ex.submit(_render_in_child, r).result(timeout=60)[0] == n
        assert ex.submit(_render_in_child, Renderer(64, 64)).result(timeout=60)[0] == n
    assert _render_in_child(r)[0] == n


def test_missing_egl_raises_renderer_unavailable_naming_the_packages():
    code = ("import numpy as np\nfrom handrecon.render.renderer import Renderer, RendererUnavailable\n"
            "try:\n    Renderer(8, 8).render([], np.eye(3))\n"
            "except RendererUnavailable as e:\n    print('UNAVAILABLE', e)\n")
    env = dict(os.environ, GLCONTEXT_LINUX_LIBEGL="/nonexistent/libEGL.so.1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "UNAVAILABLE" in out.stdout, out.stderr
    for pkg in ("libegl1", "libegl-mesa0", "libgl1-mesa-dri", "not loaded"):
        assert pkg in out.stdout
    assert issubclass(RendererUnavailable, RuntimeError)


def test_bad_inputs_raise_value_error_naming_the_argument(renderer):
    v, f = quad(-0.1, 0.1, -0.1, 0.1, 1.0)
    good = Mesh(v, f)
    bad_meshes = [
        (dict(vertices=v[:, :2]), "vertices"),
        (dict(vertices=np.where(v == v[0, 0], np.nan, v)), "vertices"),
        (dict(faces=f + 2), "faces"),
        (dict(faces=-f), "faces"),
        (dict(faces=f.astype(float)), "faces"),
        (dict(faces=f[:, :2]), "faces"),
        (dict(color=(1.5, 0.0, 0.0)), "color"),
        (dict(color=np.ones((3, 3))), "color"),
        (dict(id=-1), "id"),
        (dict(id=1.5), "id"),
        (dict(texture_noise=float("nan")), "texture_noise"),
        (dict(ao=np.ones(3)), "ao"),
        (dict(normals=np.ones((4, 2))), "normals"),
    ]
    for kwargs, name in bad_meshes:
        args = dict(vertices=v, faces=f) | kwargs
        with pytest.raises(ValueError, match=name):
            Mesh(**args)
    bad_K = [(np.eye(2), "K"), (np.diag([-1.0, 1.0, 1.0]), "K"), (np.array([[1.0, 0.1, 0], [0, 1, 0], [0, 0, 1]]), "K"),
             (np.full((3, 3), np.nan), "K")]
    for K, name in bad_K:
        with pytest.raises(ValueError, match=name):
            renderer.render(good, K)
    bad_calls = [
        (dict(size=(0, 10)), "size"),
        (dict(size=(10.5, 10)), "size"),
        (dict(size="big"), "size"),
        (dict(background=np.zeros((10, 10, 3), np.uint8), size=(20, 20)), "background"),
        (dict(background=np.zeros((H, W, 3), np.float32)), "background"),
        (dict(background=(300, 0, 0)), "background"),
        (dict(znear=0.0), "znear"),
        (dict(znear=2.0, zfar=1.0), "znear"),
    ]
    for kwargs, name in bad_calls:
        with pytest.raises(ValueError, match=name):
            renderer.render(good, K224, **kwargs)
    with pytest.raises(ValueError, match="meshes"):
        renderer.render([good, "not a mesh"], K224)
    with pytest.raises(ValueError, match="lights"):
        renderer.render(good, K224, lights=[Light()] * 5)
    with pytest.raises(ValueError, match="direction"):
        Light(direction=(0.0, 0.0, 0.0))
    for kwargs, name in ((dict(width=0), "size"), (dict(samples=3), "samples"), (dict(shading="flat"), "shading")):
        with pytest.raises(ValueError, match=name):
            Renderer(**(dict(width=8, height=8) | kwargs))
