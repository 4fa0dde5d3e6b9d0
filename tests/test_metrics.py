"""handrecon.metrics against an independent per-sample reference written here from the FreiHAND scorer's
definitions (scipy.linalg.orthogonal_procrustes, brute-force nearest neighbours, per-keypoint PCK loops,
np.trapezoid), plus exact invariances and boundary cases."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from handrecon import metrics

ATOL = 1e-12


# ---------------------------------------------------------------------------------------------------------
# reference implementation: plain loops over samples, one keypoint at a time
# ---------------------------------------------------------------------------------------------------------
def ref_align(gt, pred):
    """Align pred (N,3) to gt (N,3): the scorer's align_w_scale(gt, pred)."""
    gt_mean = gt.mean(axis=0)
    g = gt - gt_mean
    p = pred - pred.mean(axis=0)
    g_scale = np.linalg.norm(g) + 1e-8
    p_scale = np.linalg.norm(p) + 1e-8
    g = g / g_scale
    p = p / p_scale
    rot, scale = orthogonal_procrustes(g, p)
    return np.dot(p, rot.T) * scale * g_scale + gt_mean


def ref_nn(src, dst):
    """Distance of every src point to its nearest dst point, brute force."""
    return np.array([min(np.sqrt(((s - d) ** 2).sum()) for d in dst) for s in src])


def ref_fscore(gt, pred, th):
    d_gt = ref_nn(gt, pred)
    d_pred = ref_nn(pred, gt)
    a = sum(float(d < th) for d in d_pred) / len(d_pred)
    b = sum(float(d < th) for d in d_gt) / len(d_gt)
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


class RefEval:
    """Per-keypoint accumulation as the scorer's EvalUtil."""

    def __init__(self, num_kp):
        self.data = [[] for _ in range(num_kp)]

    def feed(self, gt, vis, pred):
        for i in range(gt.shape[0]):
            if vis[i]:
                self.data[i].append(float(np.sqrt(((gt[i] - pred[i]) ** 2).sum())))

    def measures(self, lo, hi, steps):
        ts = np.linspace(lo, hi, steps)
        norm = np.trapezoid(np.ones_like(ts), ts)
        means, medians, aucs, curves = [], [], [], []
        for d in self.data:
            if not d:
                continue
            d = np.array(d)
            means.append(d.mean())
            medians.append(np.median(d))
            curve = np.array([np.mean((d <= t).astype(float)) for t in ts])
            curves.append(curve)
            aucs.append(np.trapezoid(curve, ts) / norm)
        return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(np.array(curves), 0), ts


def ref_freihand(pred_xyz, pred_verts, gt_xyz, gt_verts):
    S, J, V = gt_xyz.shape[0], gt_xyz.shape[1], gt_verts.shape[1]
    ev = {k: RefEval(J if "j" in k else V) for k in ("cs_j", "pa_j", "cs_v", "pa_v")}
    f, fa = [], []
    for i in range(S):
        xa = ref_align(gt_xyz[i], pred_xyz[i])
        va = ref_align(gt_verts[i], pred_verts[i])
        ev["cs_j"].feed(gt_xyz[i], np.ones(J), pred_xyz[i])
        ev["pa_j"].feed(gt_xyz[i], np.ones(J), xa)
        ev["cs_v"].feed(gt_verts[i], np.ones(V), pred_verts[i])
        ev["pa_v"].feed(gt_verts[i], np.ones(V), va)
        f.append([ref_fscore(gt_verts[i], pred_verts[i], t) for t in (0.005, 0.015)])
        fa.append([ref_fscore(gt_verts[i], va, t) for t in (0.005, 0.015)])
    out = {}
    for k, e in ev.items():
        prefix, kind = k.split("_")
        mean, median, auc, _, _ = e.measures(0.0, 0.05, 100)
        name = "mpjpe" if kind == "j" else "mpvpe"
        out[f"{prefix}_{name}_mm"] = mean * 1000
        out[f"{prefix}_{name}_median_mm"] = median * 1000
        out[f"{prefix}_auc_{'joints' if kind == 'j' else 'vertices'}"] = auc
    f, fa = np.mean(f, 0), np.mean(fa, 0)
    out.update(f5=f[0], f15=f[1], pa_f5=fa[0], pa_f15=fa[1], num_samples=S)
    return out


# ---------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------
def make_hands(S=6, N=21, noise=0.01, seed=0):
    """Camera-space point sets about 0.6 m in front of the camera and noisy, rotated, scaled predictions."""
    rng = np.random.default_rng(seed)
    gt = rng.normal(scale=0.04, size=(S, N, 3)) + np.array([0.02, -0.01, 0.6])
    R = Rotation.random(S, random_state=seed).as_matrix() if S else np.zeros((0, 3, 3))
    pred = np.einsum("sij,snj->sni", R, gt + rng.normal(scale=noise, size=gt.shape)) * 1.1 + 0.05
    return pred, gt


def random_similarity(points, seed=1, reflect=False):
    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    if reflect:
        R = R @ np.diag([1.0, 1.0, -1.0])
    return 0.7 * points @ R.T + rng.normal(size=3)


# ---------------------------------------------------------------------------------------------------------
# Procrustes and per-sample errors
# ---------------------------------------------------------------------------------------------------------
def test_procrustes_matches_scipy_reference_per_sample():
    pred, gt = make_hands(S=8)
    aligned = metrics.procrustes_align(pred, gt)
    for i in range(8):
        np.testing.assert_allclose(aligned[i], ref_align(gt[i], pred[i]), rtol=0, atol=ATOL)
    pa = metrics.pa_mpjpe(pred, gt)
    ref = [np.linalg.norm(ref_align(gt[i], pred[i]) - gt[i], axis=1).mean() for i in range(8)]
    np.testing.assert_allclose(pa, ref, rtol=0, atol=ATOL)
    assert np.all(pa < metrics.mpjpe(pred, gt))


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_undoes_similarity_and_reflection(reflect):
    _, gt = make_hands(S=1)
    pred = random_similarity(gt[0], reflect=reflect)
    assert metrics.mpjpe(pred, gt[0]) > 0.1
    # not exactly 0: the scorer adds 1e-8 to both norms, a relative bias of about 1e-8 / |pred - mean|
    assert metrics.pa_mpjpe(pred, gt[0]) < 1e-7
    np.testing.assert_allclose(metrics.procrustes_align(pred, gt[0]), gt[0], atol=1e-7)


def test_all_zero_prediction_aligns_to_ground_truth_centroid():
    _, gt = make_hands(S=3)
    zero = np.zeros_like(gt)
    aligned = metrics.procrustes_align(zero, gt)
    np.testing.assert_allclose(aligned, np.broadcast_to(gt.mean(1, keepdims=True), gt.shape), atol=ATOL)
    ref = [np.linalg.norm(ref_align(gt[i], zero[i]) - gt[i], axis=1).mean() for i in range(3)]
    np.testing.assert_allclose(metrics.pa_mpjpe(zero, gt), ref, atol=ATOL)


def test_batched_equals_per_sample_and_leading_axes():
    pred, gt = make_hands(S=6, N=30)
    for fn in (metrics.mpjpe, metrics.pa_mpjpe, metrics.mpvpe, metrics.pa_mpvpe):
        batched = fn(pred, gt)
        assert batched.shape == (6,)
        single = np.array([fn(pred[i], gt[i]) for i in range(6)])
        assert all(isinstance(fn(pred[i], gt[i]), float) for i in range(2))
        np.testing.assert_allclose(batched, single, rtol=0, atol=ATOL)
        np.testing.assert_allclose(fn(pred.reshape(2, 3, 30, 3), gt.reshape(2, 3, 30, 3)), batched.reshape(2, 3),
                                   rtol=0, atol=ATOL)
    f = metrics.f_score(pred, gt, 0.02)
    assert f.shape == (6,)
    np.testing.assert_array_equal(f, [metrics.f_score(pred[i], gt[i], 0.02) for i in range(6)])


def test_torch_and_numpy_inputs_agree():
    pred, gt = make_hands(S=4)
    tp, tg = torch.from_numpy(pred), torch.from_numpy(gt)
    np.testing.assert_array_equal(metrics.procrustes_align(tp, tg), metrics.procrustes_align(pred, gt))
    np.testing.assert_array_equal(metrics.pa_mpjpe(tp, tg), metrics.pa_mpjpe(pred, gt))
    np.testing.assert_array_equal(metrics.mpjpe(tp.float(), tg.float()),
                                  metrics.mpjpe(pred.astype(np.float32), gt.astype(np.float32)))
    np.testing.assert_array_equal(metrics.f_score(tp, tg, 0.03), metrics.f_score(pred, gt, 0.03))
    err = metrics.point_errors(pred, gt)
    assert metrics.pck_auc(torch.from_numpy(err)) == metrics.pck_auc(err)
    valid = np.ones(gt.shape[:2], bool)
    valid[:, 0] = False
    np.testing.assert_array_equal(metrics.mpjpe(tp, tg, valid=torch.from_numpy(valid)),
                                  metrics.mpjpe(pred, gt, valid=valid))
    assert isinstance(metrics.mpjpe(pred, gt), np.ndarray)


def test_valid_mask_and_simple_errors():
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[:, 0, 0] = 3.0
    pred[:, 1, 1] = 4.0
    np.testing.assert_allclose(metrics.mpjpe(pred, gt), [7 / 3, 7 / 3])
    valid = np.array([[True, False, True], [False, False, False]])
    out = metrics.mpjpe(pred, gt, valid=valid)
    assert out[0] == pytest.approx(1.5) and np.isnan(out[1])
    assert metrics.root_error([0.0, 3.0, 4.0], [0.0, 0.0, 0.0]) == pytest.approx(5.0)
    np.testing.assert_allclose(metrics.keypoint_2d_error(np.array([[[3.0, 4.0], [0.0, 1.0]]]), np.zeros((1, 2, 2))),
                               [3.0])


# ---------------------------------------------------------------------------------------------------------
# PCK / AUC / EPE
# ---------------------------------------------------------------------------------------------------------
def test_pck_auc_and_epe_match_per_keypoint_reference_with_visibility():
    rng = np.random.default_rng(3)
    err = rng.uniform(0, 0.07, size=(40, 21))
    vis = rng.uniform(size=err.shape) > 0.3
    vis[:, 5] = False  # a keypoint never visible is skipped, as in the scorer
    ref = RefEval(21)
    for s in range(40):
        ref.feed(err[s][:, None] * np.array([1.0, 0, 0]), vis[s], np.zeros((21, 3)))
    mean, median, auc, curve, ts = ref.measures(0.0, 0.05, 100)
    t, pck = metrics.pck_curve(err, visible=vis)
    np.testing.assert_array_equal(t, ts)
    np.testing.assert_allclose(pck, curve, rtol=0, atol=ATOL)
    assert metrics.pck_auc(err, visible=vis) == pytest.approx(auc, abs=ATOL)
    m, med = metrics.epe_summary(err, visible=vis)
    assert m == pytest.approx(mean, abs=ATOL) and med == pytest.approx(median, abs=ATOL)
    # RHD/STB 20-50 mm variant is the same function with low=0.02
    mean2, _, auc2, _, _ = ref.measures(0.02, 0.05, 100)
    assert metrics.pck_auc(err, low=0.02, visible=vis) == pytest.approx(auc2, abs=ATOL)


def test_pck_uses_less_or_equal_at_exact_thresholds():
    t, pck = metrics.pck_curve(np.array([0.0, 0.025, 0.05, 0.0500001]), low=0.0, high=0.05, steps=3)
    np.testing.assert_array_equal(t, [0.0, 0.025, 0.05])
    np.testing.assert_array_equal(pck, [0.25, 0.5, 0.75])
    # errors equal to linspace values themselves
    ts = np.linspace(0.0, 0.05, 100)
    _, pck = metrics.pck_curve(ts)
    np.testing.assert_allclose(pck, np.arange(1, 101) / 100)


def test_pck_auc_limits_and_2d():
    assert metrics.pck_auc(np.zeros((5, 21))) == 1.0
    assert metrics.pck_auc(np.full((5, 21), 10.0)) == 0.0
    assert metrics.pck_auc_2d(np.zeros(7)) == 1.0
    assert metrics.pck_auc_2d(np.full(7, 31.0)) == 0.0
    # errors uniform on the pixel axis: the AUC over 0-30 px of a 15 px error is about one half
    assert metrics.pck_auc_2d(np.full((3, 21), 15.0)) == pytest.approx(0.5, abs=0.02)
    # pooled 1-D errors equal the (S, N) per-keypoint result when every keypoint has the same count
    err = np.random.default_rng(0).uniform(0, 0.06, size=(10, 21))
    assert metrics.pck_auc(err.ravel()) == pytest.approx(metrics.pck_auc(err), abs=ATOL)


# ---------------------------------------------------------------------------------------------------------
# F-score
# ---------------------------------------------------------------------------------------------------------
def test_f_score_matches_brute_force_reference():
    pred, gt = make_hands(S=3, N=40, noise=0.004)
    pred = metrics.procrustes_align(pred, gt)
    pred = pred[:, :33]  # different point counts are allowed
    for t in (0.002, 0.005, 0.015):
        f = metrics.f_score(pred, gt, t)
        np.testing.assert_allclose(f, [ref_fscore(gt[i], pred[i], t) for i in range(3)], rtol=0, atol=ATOL)


def test_f_score_strict_threshold():
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pred = np.array([[0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # gt point 0 and pred point 0 are exactly 0.5 from their nearest neighbours
    assert metrics.f_score(pred, gt, 0.5) == pytest.approx(0.5)
    assert metrics.f_score(pred, gt, 0.5 + 1e-9) == 1.0
    assert metrics.f_score(pred[:1], gt[:1], 0.5) == 0.0  # P = R = 0 -> F = 0
    assert metrics.f_score(gt, gt, 1e-6) == 1.0


# ---------------------------------------------------------------------------------------------------------
# silhouettes and sequences
# ---------------------------------------------------------------------------------------------------------
def test_silhouette_iou():
    a = np.zeros((2, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, :2] = True
    b[0, 1:3] = True
    np.testing.assert_allclose(metrics.silhouette_iou(a, b), [4 / 12, 1.0])  # empty-both = 1
    prob = a[0].astype(float) * 0.7 + 0.2  # 0.9 inside, 0.2 outside
    assert metrics.silhouette_iou(prob, a[0]) == 1.0
    assert metrics.silhouette_iou(torch.from_numpy(prob), torch.from_numpy(a[0])) == 1.0
    assert metrics.silhouette_iou(np.full((4, 4), 0.5), np.ones((4, 4), bool)) == 1.0  # >= threshold
    assert metrics.silhouette_iou(np.zeros((3, 3)), np.ones((3, 3))) == 0.0


def ref_accel(gt, pred, vis=None):
    """Per-frame VIBE-style acceleration error, then the mean over frames."""
    acc_g = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    acc_p = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    per_frame = np.linalg.norm(acc_p - acc_g, axis=2).mean(1)
    if vis is not None:
        keep = np.array([vis[t] and vis[t + 1] and vis[t + 2] for t in range(len(vis) - 2)])
        per_frame = per_frame[keep]
    return per_frame.mean()


def test_acceleration_error():
    rng = np.random.default_rng(5)
    t = np.arange(10.0)[:, None, None]
    gt = rng.normal(size=(10, 21, 3)) * 0.01
    constant_velocity = gt + 0.3 + 0.01 * t  # linear motion added: second differences unchanged
    assert metrics.acceleration_error(constant_velocity, gt) == pytest.approx(0.0, abs=1e-12)
    pred = gt + rng.normal(size=gt.shape) * 0.002
    e = metrics.acceleration_error(pred, gt)
    assert e == pytest.approx(ref_accel(gt, pred), abs=ATOL)
    assert metrics.acceleration_error(pred, gt, fps=30) == pytest.approx(e * 900)
    vis = np.ones(10, bool)
    vis[4] = False
    assert metrics.acceleration_error(pred, gt, valid=vis) == pytest.approx(ref_accel(gt, pred, vis), abs=ATOL)
    batched = metrics.acceleration_error(np.stack([pred, gt]), np.stack([gt, gt]))
    np.testing.assert_allclose(batched, [e, 0.0], atol=ATOL)


# ---------------------------------------------------------------------------------------------------------
# the benchmark summary
# ---------------------------------------------------------------------------------------------------------
FREIHAND_KEYS = {
    "cs_mpjpe_mm", "pa_mpjpe_mm", "cs_mpvpe_mm", "pa_mpvpe_mm",
    "cs_mpjpe_median_mm", "pa_mpjpe_median_mm", "cs_mpvpe_median_mm", "pa_mpvpe_median_mm",
    "cs_auc_joints", "pa_auc_joints", "cs_auc_vertices", "pa_auc_vertices",
    "f5", "f15", "pa_f5", "pa_f15", "num_samples",
}


def test_freihand_scores_match_reference_loop():
    pred_xyz, gt_xyz = make_hands(S=5, N=21, noise=0.006, seed=7)
    pred_verts, gt_verts = make_hands(S=5, N=60, noise=0.004, seed=8)
    scores = metrics.freihand_scores(pred_xyz, pred_verts, gt_xyz, gt_verts)
    assert set(scores) == FREIHAND_KEYS
    assert scores["num_samples"] == 5 and isinstance(scores["num_samples"], int)
    assert all(isinstance(v, float) and np.isfinite(v) for k, v in scores.items() if k != "num_samples")
    ref = ref_freihand(pred_xyz, pred_verts, gt_xyz, gt_verts)
    for k in FREIHAND_KEYS:
        assert scores[k] == pytest.approx(ref[k], abs=1e-9), k
    assert scores["pa_mpjpe_mm"] < scores["cs_mpjpe_mm"]
    assert 0.0 < scores["pa_f15"] <= 1.0 and scores["f15"] < scores["pa_f15"]
    # per-sample functions agree with the summary
    assert scores["pa_mpvpe_mm"] == pytest.approx(metrics.pa_mpvpe(pred_verts, gt_verts).mean() * 1000)
    assert scores["pa_f5"] == pytest.approx(
        metrics.f_score(metrics.procrustes_align(pred_verts, gt_verts), gt_verts, 0.005).mean())


def test_freihand_scores_mano_sized_and_perfect():
    _, gt_xyz = make_hands(S=2, N=21)
    _, gt_verts = make_hands(S=2, N=778)
    scores = metrics.freihand_scores(torch.from_numpy(gt_xyz), gt_verts, gt_xyz, gt_verts)
    assert scores["cs_mpjpe_mm"] == 0.0 and scores["cs_auc_joints"] == 1.0
    assert scores["f5"] == scores["f15"] == scores["pa_f5"] == 1.0
    assert scores["pa_mpvpe_mm"] < 1e-5  # the scorer's 1e-8 norm epsilon leaves a sub-nanometre bias


# ---------------------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_value_error_naming_argument():
    pred, gt = make_hands(S=2)
    with pytest.raises(ValueError, match=r"pred: expected shape \(\.\.\., N, 3\)"):
        metrics.mpjpe(pred[..., :2], gt)
    with pytest.raises(ValueError, match=r"gt: expected shape \(\.\.\., N, 3\)"):
        metrics.procrustes_align(pred, gt[0, 0])
    with pytest.raises(ValueError, match="pred: expected the shape of gt"):
        metrics.pa_mpjpe(pred[:, :20], gt)
    bad = gt.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="gt: contains NaN or inf"):
        metrics.pa_mpjpe(pred, bad)
    with pytest.raises(ValueError, match="pred_verts: contains NaN or inf"):
        metrics.f_score(np.full((5, 3), np.inf), gt[0], 0.005)
    with pytest.raises(ValueError, match="threshold"):
        metrics.f_score(pred, gt, -1.0)
    with pytest.raises(ValueError, match="valid: expected shape"):
        metrics.mpjpe(pred, gt, valid=np.ones(21, bool))
    with pytest.raises(ValueError, match="errors: contains NaN or inf"):
        metrics.pck_auc(np.array([0.01, np.nan]))
    with pytest.raises(ValueError, match="errors: expected shape"):
        metrics.pck_curve(np.float64(0.1))
    with pytest.raises(ValueError, match="visible: expected shape"):
        metrics.pck_auc(np.zeros((3, 21)), visible=np.ones((3, 20), bool))
    with pytest.raises(ValueError, match="high"):
        metrics.pck_auc(np.zeros(3), low=0.05, high=0.05)
    with pytest.raises(ValueError, match="steps"):
        metrics.pck_curve(np.zeros(3), steps=1)
    with pytest.raises(ValueError, match=r"gt_mask: expected shape \(\.\.\., H, W\)"):
        metrics.silhouette_iou(np.zeros((4, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="pred_seq: expected shape"):
        metrics.acceleration_error(pred[:2], gt[:2])
    with pytest.raises(ValueError, match="pred_root: expected shape"):
        metrics.root_error(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="pred_uv: expected shape"):
        metrics.keypoint_2d_error(pred, gt)
    with pytest.raises(ValueError, match="pred_verts: expected"):
        metrics.freihand_scores(pred, pred[0], gt, gt)
    with pytest.raises(ValueError, match="pred_xyz: expected shape"):
        metrics.freihand_scores(pred[0], pred, gt[0], gt)
    with pytest.raises(ValueError, match="pred: expected a numeric array"):
        metrics.mpjpe("not points", gt)
