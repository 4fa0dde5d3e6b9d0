import numpy as np
import pytest
import torch

from handrecon import registration as reg
from handrecon.bench_registration import (
    make_cases,
    objective_1d,
    objective_2d,
    slsqp_root_1d,
    slsqp_root_2d,
    slsqp_root_2d_fixed,
)
from handrecon.registration import (
    FALLBACK_ROOT,
    contour_spans,
    fuse_roots,
    register_root,
    register_root_1d,
    register_root_2d,
    register_root_pnp,
)


@pytest.fixture(scope="module")
def cases():
    # Held-out synthetic cases (seed 0, never tuned on); every test below reads a slice of them.
    return make_cases(256, seed=0)


def _err(root, gt):
    return np.linalg.norm(np.asarray(root) - gt, axis=-1)


# ---- exact cases --------------------------------------------------------------------------------------
def test_2d_exact_on_noise_free_keypoints(cases):
    s = slice(0, 32)
    r = register_root_2d(cases.keypoints_gt[s], cases.keypoints_2d_gt[s], cases.K[s])
    assert r.valid.all() and r.inliers.all()
    assert _err(r.root, cases.root[s]).max() < 1e-6
    assert r.rmse.max() < 1e-6


def test_1d_recovers_root_from_clean_silhouette(cases):
    s = slice(0, 32)
    # No start given: the contour's own guess, then the active-set Gauss-Newton.
    r = register_root_1d(cases.vertices_gt[s], cases.silhouette_gt[s], cases.K[s])
    e = _err(r.root, cases.root[s])
    assert r.valid.all()
    assert e.mean() < 0.002 and e.max() < 0.005, (e.mean(), e.max())


def test_contour_spans_of_a_rectangle():
    mask = np.zeros((1, 64, 64), dtype=bool)
    mask[0, 20:41, 10:31] = True  # pixel centres x 10..30, y 20..40
    spans, valid = contour_spans(mask, num_axes=4)  # 0, 45, 90, 135 degrees
    assert valid.all()
    # Axis-aligned: the true edge lies half a pixel beyond the boundary pixel centres.
    assert np.allclose(spans[0, 0], [9.5, 30.5]) and np.allclose(spans[0, 2], [19.5, 40.5])
    # Diagonal: centres project every 1/sqrt(2) px, so the expected gap is half of that.
    gap = 0.5 / np.sqrt(2)
    assert np.allclose(spans[0, 1], [30 / np.sqrt(2) - gap, 70 / np.sqrt(2) + gap])


def test_silhouette_dtypes_agree(cases):
    s = slice(0, 4)
    prob = cases.silhouette_gt[s]
    roots = [register_root_1d(cases.vertices_gt[s], m, cases.K[s]).root
             for m in (prob, prob > 0.5, (prob > 0.5).astype(np.uint8), (prob > 0.5).astype(np.uint8) * 255,
                       torch.as_tensor(prob))]
    for r in roots[1:]:
        assert np.allclose(np.asarray(r), roots[0])


# ---- agreement with the official per-sample SLSQP ------------------------------------------------------
def test_2d_matches_slsqp_objective(cases):
    s = slice(0, 8)
    r = register_root_2d(cases.keypoints[s], cases.keypoints_2d[s], cases.K[s], cases.confidence[s])
    for b in range(8):
        args = (cases.keypoints[b], cases.keypoints_2d[b], cases.K[b])
        m = r.inliers[b]
        t_ref = slsqp_root_2d_fixed(*args, m)  # same objective, same inliers, from (0, 0, 0.6)
        ours, theirs = objective_2d(r.root[b], *args, m), objective_2d(t_ref, *args, m)
        assert ours <= theirs * (1 + 1e-9) + 1e-9, (b, ours, theirs)
        # The whole procedure (rejection rounds included) lands on the same root.
        t_full, m_full = slsqp_root_2d(*args, cases.confidence[b])
        assert (m_full == m).all() and np.abs(t_full - r.root[b]).max() < 1e-6


def test_1d_matches_slsqp_objective(cases):
    s = slice(0, 8)
    axes = reg.span_axes(12)
    spans, valid = contour_spans(cases.silhouette[s])
    r2 = register_root_2d(cases.keypoints[s], cases.keypoints_2d[s], cases.K[s], cases.confidence[s])
    r1 = register_root_1d(cases.vertices[s], cases.silhouette[s], cases.K[s], init=r2.root)
    assert valid.all() and r1.valid.all()
    start = reg._start_1d(cases.vertices[s], cases.K[s], spans, axes, r2.root)
    for b in range(8):
        t_ref = slsqp_root_1d(cases.vertices[b], spans[b], cases.K[b], start[b])
        ours = objective_1d(r1.root[b], cases.vertices[b], spans[b], cases.K[b])
        theirs = objective_1d(t_ref, cases.vertices[b], spans[b], cases.K[b])
        assert ours <= theirs * (1 + 1e-6) + 1e-6, (b, ours, theirs)


# ---- the paper's claim on held-out noisy cases ------------------------------------------------------------
def test_adaptive_beats_2d_only_and_1d_only(cases):
    res = register_root(cases.vertices, cases.keypoints, cases.keypoints_2d, cases.K, cases.silhouette,
                        cases.confidence)
    e2, e1, ea = (_err(x, cases.root).mean() for x in (res.root_2d, res.root_1d, res.root))
    assert ea < e2 and ea < e1, (e2, e1, ea)
    assert set(res.mode) == {"2d", "blend", "1d"}
    # Where the 2D pose collapsed, the fusion falls back on the silhouette.
    failed_2d = np.array(cases.kind) == "2d_failure"
    assert (_err(res.root, cases.root)[failed_2d].mean() < 0.5 * _err(res.root_2d, cases.root)[failed_2d].mean())


# ---- outliers and confidence ---------------------------------------------------------------------------
def test_outlier_rejection_drops_wrong_keypoints(cases):
    s = slice(0, 16)
    kp2d = cases.keypoints_2d_gt[s].copy()
    rng = np.random.default_rng(1)
    wrong = np.zeros(kp2d.shape[:2], dtype=bool)
    for b in range(16):
        ids = rng.choice(np.arange(1, 21), 3, replace=False)
        a = rng.uniform(0, 2 * np.pi, 3)
        kp2d[b, ids] += np.stack([np.cos(a), np.sin(a)], -1) * rng.uniform(20, 40, 3)[:, None]
        wrong[b, ids] = True
    once = register_root_2d(cases.keypoints_gt[s], kp2d, cases.K[s], rounds=1)
    full = register_root_2d(cases.keypoints_gt[s], kp2d, cases.K[s])
    e_once, e_full = _err(once.root, cases.root[s]), _err(full.root, cases.root[s])
    assert e_full.mean() < 0.2 * e_once.mean()
    assert not (full.inliers & wrong).any()  # every wrong keypoint rejected
    assert (full.inliers.sum(1) >= 13).all()


def test_outlier_rejection_helps_on_noisy_cases(cases):
    normal = np.flatnonzero((np.array(cases.kind) == "normal") & (cases.wrong.sum(1) >= 2))
    args = (cases.keypoints[normal], cases.keypoints_2d[normal], cases.K[normal], cases.confidence[normal])
    e_once = _err(register_root_2d(*args, rounds=1).root, cases.root[normal]).mean()
    e_full = _err(register_root_2d(*args).root, cases.root[normal]).mean()
    assert e_full < e_once


def test_confidence_gate_drops_low_confidence_joints(cases):
    s = slice(0, 4)
    kp2d = cases.keypoints_2d_gt[s].copy()
    kp2d[:, 8] += 80.0  # a tip far off ...
    conf = np.ones((4, 21))
    conf[:, 8] = 0.1  # ... but at the gate (<= 0.1 is dropped)
    r = register_root_2d(cases.keypoints_gt[s], kp2d, cases.K[s], conf, rounds=1)
    assert not r.inliers[:, 8].any() and _err(r.root, cases.root[s]).max() < 1e-6
    conf[:, 8] = 0.11  # just above the gate: used, and it pulls the root away
    r = register_root_2d(cases.keypoints_gt[s], kp2d, cases.K[s], conf, rounds=1)
    assert r.inliers[:, 8].all() and _err(r.root, cases.root[s]).min() > 1e-3


# ---- fusion ----------------------------------------------------------------------------------------------
def test_fusion_regimes_and_modes():
    t2 = np.zeros((3, 3))
    t1 = np.array([[0, 0, 0.01], [0, 0, 0.04], [0, 0, 0.10]])
    root, w, mode = fuse_roots(t2, t1)
    assert mode == ["2d", "blend", "1d"]
    assert np.allclose(w, [0, 0.5, 1])
    assert np.allclose(root, [[0, 0, 0], [0, 0, 0.02], [0, 0, 0.10]])
    assert fuse_roots(t2[0], t1[1])[2] == "blend"  # a single (3,) root
    rt, wt, _ = fuse_roots(torch.as_tensor(t2), torch.as_tensor(t1))
    assert isinstance(rt, torch.Tensor) and np.allclose(rt.numpy(), root)


@pytest.mark.parametrize("delta", [0.02, 0.06])
def test_fusion_is_continuous_at_both_thresholds(delta):
    direction = np.array([0.6, 0.0, 0.8])
    eps = 1e-9
    t2 = np.array([[0.01, -0.02, 0.5]] * 3)
    t1 = t2 + np.array([delta - eps, delta, delta + eps])[:, None] * direction
    root, w, mode = fuse_roots(t2, t1)
    assert np.abs(root[0] - root[2]).max() < 1e-7
    assert np.abs(w[0] - w[2]) < 1e-6
    # Exactly at a threshold: d <= delta2 is 2D; d = delta1 is still the blend, with weight 1 on 1D.
    _, w, mode = fuse_roots(np.zeros(3), np.array([0.0, 0.0, delta]))
    assert (mode, float(w)) == (("2d", 0.0) if delta == 0.02 else ("blend", 1.0))


def test_fusion_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="thresholds"):
        fuse_roots(np.zeros(3), np.ones(3), thresholds=(0.02, 0.06))
    with pytest.raises(ValueError, match="root_1d"):
        fuse_roots(np.zeros((2, 3)), np.ones((3, 3)))


# ---- degradation -----------------------------------------------------------------------------------------
def _assert_finite(res):
    for name in ("root", "root_2d", "root_1d", "distance", "weight_1d", "rmse_2d", "rmse_1d"):
        assert np.isfinite(np.asarray(getattr(res, name))).all(), name


def test_no_or_empty_silhouette_gives_2d(cases):
    s = slice(0, 3)
    args = (cases.vertices[s], cases.keypoints[s], cases.keypoints_2d[s], cases.K[s])
    for sil in (None, np.zeros_like(cases.silhouette[s]), [None] * 3):
        res = register_root(*args, sil, cases.confidence[s])
        _assert_finite(res)
        assert res.mode == ["2d"] * 3 and res.valid.all() and not res.valid_1d.any()
        assert np.allclose(res.root, res.root_2d) and np.allclose(res.root_1d, FALLBACK_ROOT)


def test_tiny_silhouette_counts_as_empty(cases):
    sil = np.zeros((1, 224, 224), dtype=bool)
    sil[0, 100, 100] = True
    res = register_root(cases.vertices[:1], cases.keypoints[:1], cases.keypoints_2d[:1], cases.K[:1], sil)
    assert res.mode == ["2d"]


def test_no_confident_keypoints_gives_1d(cases):
    s = slice(0, 3)
    res = register_root(cases.vertices_gt[s], cases.keypoints_gt[s], cases.keypoints_2d_gt[s], cases.K[s],
                        cases.silhouette_gt[s], np.zeros((3, 21)))
    _assert_finite(res)
    assert res.mode == ["1d"] * 3 and not res.valid_2d.any() and res.valid.all()
    assert (res.num_inliers == 0).all()
    assert _err(res.root, cases.root[s]).max() < 0.005


def test_mixed_batch_modes_and_failure(cases):
    s = slice(0, 4)
    conf = np.ones((4, 21))
    conf[[1, 3]] = 0.0  # no usable keypoints in samples 1 and 3
    conf[2, 3:] = 0.05  # only 3 confident keypoints left in sample 2: too few
    sil = [cases.silhouette_gt[0], cases.silhouette_gt[1], None, np.zeros((224, 224))]
    res = register_root(cases.vertices_gt[s], cases.keypoints_gt[s], cases.keypoints_2d_gt[s], cases.K[s],
                        sil, conf)
    _assert_finite(res)
    assert res.mode[1:] == ["1d", "failed", "failed"]
    assert res.mode[0] in ("2d", "blend")
    assert res.valid.tolist() == [True, True, False, False]
    assert np.allclose(res.root[2:], FALLBACK_ROOT)
    assert _err(res.root[:2], cases.root[:2]).max() < 0.005


# ---- kinds, shapes, errors -------------------------------------------------------------------------------
def test_torch_in_torch_out_numpy_in_numpy_out(cases):
    s = slice(0, 2)
    np_args = (cases.vertices[s], cases.keypoints[s], cases.keypoints_2d[s], cases.K[s], cases.silhouette[s],
               cases.confidence[s])
    res_np = register_root(*np_args)
    assert isinstance(res_np.root, np.ndarray) and res_np.root.dtype == np.float64
    t_args = [torch.as_tensor(a, dtype=torch.float32) for a in np_args]
    res_t = register_root(*t_args)
    assert isinstance(res_t.root, torch.Tensor) and res_t.root.dtype == torch.float32
    assert res_t.valid.dtype == torch.bool and res_t.inliers.shape == (2, 21)
    assert res_t.mode == res_np.mode
    assert np.abs(res_t.root.numpy() - res_np.root).max() < 1e-4  # float32 inputs, float64 inside
    r2 = register_root_2d(*t_args[1:4])
    assert isinstance(r2.root, torch.Tensor)


def test_single_sample_and_shared_K(cases):
    res = register_root(cases.vertices[:1], cases.keypoints[:1], cases.keypoints_2d[:1], cases.K[0],
                        cases.silhouette[:1], cases.confidence[:1])
    assert res.root.shape == (1, 3) and len(res.mode) == 1 and res.valid.shape == (1,)
    full = register_root(cases.vertices[:2], cases.keypoints[:2], cases.keypoints_2d[:2], cases.K[:2],
                         cases.silhouette[:2], cases.confidence[:2])
    assert np.allclose(res.root[0], full.root[0])


@pytest.mark.parametrize("name, value, match", [
    ("vertices", np.zeros((2, 778, 2)), "vertices"),
    ("vertices", np.zeros((3, 778, 3)), "vertices"),
    ("keypoints", np.zeros((2, 21)), "keypoints"),
    ("keypoints", np.zeros((3, 21, 3)), "keypoints"),
    ("keypoints_2d", np.zeros((2, 20, 2)), "keypoints_2d"),
    ("K", np.zeros((2, 3, 4)), "K"),
    ("K", np.diag([-500.0, 500.0, 1.0]), "K"),
    ("K", np.diag([500.0, 0.0, 1.0]), "K"),
    ("silhouette", np.zeros((3, 224, 224)), "silhouette"),
    ("silhouette", np.zeros((2, 224)), "silhouette"),
    ("confidence", np.ones((2, 20)), "confidence"),
    ("confidence", np.full((2, 21), 1.5), "confidence"),
    ("num_axes", 1, "num_axes"),
    ("thresholds", (0.01, 0.05), "thresholds"),
])
def test_bad_inputs_raise_naming_the_argument(cases, name, value, match):
    kwargs = dict(vertices=cases.vertices[:2], keypoints=cases.keypoints[:2],
                  keypoints_2d=cases.keypoints_2d[:2], K=cases.K[:2], silhouette=cases.silhouette[:2],
                  confidence=cases.confidence[:2])
    kwargs[name] = value
    with pytest.raises(ValueError, match=match):
        register_root(**kwargs)


@pytest.mark.parametrize("name", ["vertices", "keypoints", "keypoints_2d", "K", "silhouette", "confidence"])
def test_nan_inputs_raise_naming_the_argument(cases, name):
    kwargs = dict(vertices=cases.vertices[:2].copy(), keypoints=cases.keypoints[:2].copy(),
                  keypoints_2d=cases.keypoints_2d[:2].copy(), K=cases.K[:2].copy(),
                  silhouette=cases.silhouette[:2].copy(), confidence=cases.confidence[:2].copy())
    kwargs[name].reshape(-1)[0] = np.nan
    with pytest.raises(ValueError, match=name):
        register_root(**kwargs)


# ---- PnP baseline ----------------------------------------------------------------------------------------
def test_pnp_baseline(cases):
    s = slice(0, 8)
    exact = register_root_pnp(cases.keypoints_gt[s], cases.keypoints_2d_gt[s], cases.K[s])
    assert exact.valid.all()
    assert _err(exact.root, cases.root[s]).max() < 1e-4
    assert np.allclose(exact.rotation, np.eye(3), atol=1e-4)  # the mesh is already in camera orientation
    noisy = register_root_pnp(cases.keypoints[s], cases.keypoints_2d[s], cases.K[s], cases.confidence[s])
    assert noisy.valid.all() and np.isfinite(noisy.root).all()
    few = register_root_pnp(cases.keypoints[:1], cases.keypoints_2d[:1], cases.K[:1],
                            np.r_[np.ones(5), np.zeros(16)][None])
    assert not few.valid[0] and np.allclose(few.root[0], FALLBACK_ROOT)
