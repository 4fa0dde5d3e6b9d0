"""Evaluation metrics for 3D hand pose and mesh recovery, numerically identical to the FreiHAND scorer.

Pure functions on batched inputs. Every input may be a ``torch.Tensor`` (any device or float dtype), a
numpy array or a nested list; everything is computed in float64 numpy (the official scorer is numpy/scipy)
and returned as numpy arrays or Python/numpy floats (a per-sample result of an unbatched input is a 0-d
``np.float64``, which is a ``float``).

Units: metres in, metres out (3D); pixels in, pixels out (2D). Only :func:`freihand_scores` converts, and
its key names carry the unit (``_mm``).

How the official FreiHAND scorer (``eval.py`` + ``utils/eval_util.py`` of lmb-freiburg/freihand) maps here:

- ``align_w_scale(gt, pred)``             -> :func:`procrustes_align` (pred, gt), batched, same arithmetic
- ``EvalUtil.feed`` distances            -> :func:`point_errors` (Euclidean distance per point)
- ``EvalUtil.get_measures(0, 0.05, 100)`` -> :func:`epe_summary` (mean, median), :func:`pck_curve`,
  :func:`pck_auc` (per keypoint over samples, then mean over keypoints; AUC by the trapezoid rule)
- ``calculate_fscore(gt, pred, t)``       -> :func:`f_score` (nearest neighbours both ways, strict ``<``)
- the whole ``main`` loop                 -> :func:`freihand_scores`
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "procrustes_align",
    "point_errors",
    "mpjpe",
    "pa_mpjpe",
    "mpvpe",
    "pa_mpvpe",
    "root_error",
    "keypoint_2d_error",
    "epe_summary",
    "pck_curve",
    "pck_auc",
    "pck_auc_2d",
    "f_score",
    "silhouette_iou",
    "acceleration_error",
    "freihand_scores",
]

# The official scorer adds this to both Frobenius norms before dividing (guards an all-zero set).
_NORM_EPS = 1e-8

try:  # numpy >= 2.0 renamed trapz; both compute the same sum.
    _trapezoid = np.trapezoid
except AttributeError:  # pragma: no cover - numpy < 2
    _trapezoid = np.trapz


# ----------------------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------------------
def _to_numpy(x: Any, name: str, dtype=np.float64) -> np.ndarray:
    """Torch tensor / numpy array / nested list -> numpy array of ``dtype`` (a copy for tensors)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch here
        t = x.detach().cpu()
        if t.is_floating_point():
            t = t.double()  # bfloat16/float16 have no numpy equivalent in every version
        x = t.numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array or tensor, got {type(x).__name__} ({exc})") from None


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")


def _points(x: Any, name: str, dim: int = 3) -> np.ndarray:
    """(..., N, dim) finite float64 array or ValueError naming ``name``."""
    a = _to_numpy(x, name)
    if a.ndim < 2 or a.shape[-1] != dim or a.shape[-2] < 1:
        raise ValueError(f"{name}: expected shape (..., N, {dim}) with N >= 1, got {tuple(a.shape)}")
    _check_finite(a, name)
    return a


def _point_pair(pred: Any, gt: Any, pred_name: str, gt_name: str, dim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    p = _points(pred, pred_name, dim)
    g = _points(gt, gt_name, dim)
    if p.shape != g.shape:
        raise ValueError(
            f"{pred_name}: expected the shape of {gt_name} {tuple(g.shape)} (..., N, {dim}), got {tuple(p.shape)}"
        )
    return p, g


def _mask(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of exactly ``shape`` (bool, or numbers where non-zero = True)."""
    a = _to_numpy(x, name, dtype=None)
    if a.dtype != bool:
        a = _to_numpy(a, name)
        _check_finite(a, name)
        a = a != 0
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(a.shape)}")
    return a


def _scalar(x: np.ndarray):
    """0-d arrays -> np.float64 (a ``float``); anything else unchanged."""
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


def _masked_mean(values: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Mean over the last axis, over ``valid`` entries only (NaN where a row has none)."""
    if valid is None:
        return values.mean(-1)
    count = valid.sum(-1)
    total = np.where(valid, values, 0.0).sum(-1)
    out = np.full(np.shape(total), np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


# ----------------------------------------------------------------------------------------------------------
# alignment and per-sample errors
# ----------------------------------------------------------------------------------------------------------
def procrustes_align(pred: Any, gt: Any) -> np.ndarray:
    """Similarity-align ``pred`` onto ``gt`` exactly as the FreiHAND scorer's ``align_w_scale(gt, pred)``.

    Per sample: centre both sets; divide each by its Frobenius norm plus 1e-8; take ``R, s`` from
    ``scipy.linalg.orthogonal_procrustes(gt_n, pred_n)`` (``R = U V^T`` and ``s = sum(sigma)`` of the SVD of
    ``gt_n^T pred_n``; reflections are NOT excluded, as in the scorer); return
    ``(pred_n @ R^T) * s * (|gt_c| + 1e-8) + mean(gt)``. Batched over the leading axes (one numpy SVD call).

    Args:
        pred: (..., N, 3) predicted points, metres.
        gt: (..., N, 3) ground-truth points, metres.

    Returns:
        (..., N, 3) float64 aligned prediction, metres.
    """
    p, g = _point_pair(pred, gt, "pred", "gt")
    mean_g = g.mean(-2, keepdims=True)
    mean_p = p.mean(-2, keepdims=True)
    g_c = g - mean_g
    p_c = p - mean_p
    s1 = np.linalg.norm(g_c, axis=(-2, -1), keepdims=True) + _NORM_EPS
    s2 = np.linalg.norm(p_c, axis=(-2, -1), keepdims=True) + _NORM_EPS
    g_n = g_c / s1
    p_n = p_c / s2
    # scipy.linalg.orthogonal_procrustes(A=g_n, B=p_n): SVD of A^T B, R = U V^T, scale = sum of singular values.
    u, w, vt = np.linalg.svd(np.swapaxes(g_n, -1, -2) @ p_n)
    rot = u @ vt
    scale = w.sum(-1)[..., None, None]
    aligned = (p_n @ np.swapaxes(rot, -1, -2)) * scale
    return aligned * s1 + mean_g


def point_errors(pred: Any, gt: Any) -> np.ndarray:
    """Euclidean distance of each point: (..., N, 3) x2 -> (..., N), metres (what ``EvalUtil.feed`` stores).

    Feed the result (flattened over samples as (S, N)) to :func:`pck_curve`, :func:`pck_auc`,
    :func:`epe_summary`.
    """
    p, g = _point_pair(pred, gt, "pred", "gt")
    return np.sqrt(np.sum(np.square(g - p), axis=-1))


def _mean_point_error(pred, gt, valid, pred_name, gt_name, dim=3):
    p, g = _point_pair(pred, gt, pred_name, gt_name, dim)
    err = np.sqrt(np.sum(np.square(g - p), axis=-1))
    v = None if valid is None else _mask(valid, "valid", err.shape)
    return _scalar(_masked_mean(err, v))


def mpjpe(pred: Any, gt: Any, valid: Any = None):
    """Mean per-joint position error per sample, no alignment (the camera-space CS-MPJPE when both are in
    camera space; the root-relative MPJPE when both are root-relative).

    Args:
        pred: (..., N, 3) predicted joints, metres.
        gt: (..., N, 3) ground-truth joints, metres.
        valid: optional (..., N) mask (bool or 0/1); the mean runs over valid joints only, NaN for a
            sample with none.

    Returns:
        (...,) float64 mean Euclidean error, metres (a float for unbatched input).
    """
    return _mean_point_error(pred, gt, valid, "pred", "gt")


def pa_mpjpe(pred: Any, gt: Any):
    """Procrustes-aligned MPJPE per sample: :func:`mpjpe` after :func:`procrustes_align` (all N joints).

    Args:
        pred: (..., N, 3) predicted joints, metres.
        gt: (..., N, 3) ground-truth joints, metres.

    Returns:
        (...,) float64 mean Euclidean error after similarity alignment, metres.
    """
    return _mean_point_error(procrustes_align(pred, gt), gt, None, "pred", "gt")


def mpvpe(pred_verts: Any, gt_verts: Any, valid: Any = None):
    """Mean per-vertex position error per sample, no alignment (same maths as :func:`mpjpe`).

    Args:
        pred_verts: (..., V, 3) predicted vertices (778 for MANO topology), metres.
        gt_verts: (..., V, 3) ground-truth vertices, metres.
        valid: optional (..., V) mask.

    Returns:
        (...,) float64 mean Euclidean error, metres.
    """
    return _mean_point_error(pred_verts, gt_verts, valid, "pred_verts", "gt_verts")


def pa_mpvpe(pred_verts: Any, gt_verts: Any):
    """Procrustes-aligned MPVPE per sample; the vertices are aligned on their own (not with the joints'
    transform), as in the scorer.

    Args:
        pred_verts: (..., V, 3) predicted vertices, metres.
        gt_verts: (..., V, 3) ground-truth vertices, metres.

    Returns:
        (...,) float64 mean Euclidean error after similarity alignment, metres.
    """
    p, g = _point_pair(pred_verts, gt_verts, "pred_verts", "gt_verts")
    return _mean_point_error(procrustes_align(p, g), g, None, "pred_verts", "gt_verts")


def root_error(pred_root: Any, gt_root: Any):
    """Euclidean error of the camera-space root (the translation added back to root-relative 3D).

    Args:
        pred_root: (..., 3) predicted root position, metres.
        gt_root: (..., 3) ground-truth root position, metres.

    Returns:
        (...,) float64 distance, metres.
    """
    p = _to_numpy(pred_root, "pred_root")
    g = _to_numpy(gt_root, "gt_root")
    for a, name in ((p, "pred_root"), (g, "gt_root")):
        if a.ndim < 1 or a.shape[-1] != 3:
            raise ValueError(f"{name}: expected shape (..., 3), got {tuple(a.shape)}")
        _check_finite(a, name)
    if p.shape != g.shape:
        raise ValueError(f"pred_root: expected the shape of gt_root {tuple(g.shape)}, got {tuple(p.shape)}")
    return _scalar(np.sqrt(np.sum(np.square(g - p), axis=-1)))


def keypoint_2d_error(pred_uv: Any, gt_uv: Any, valid: Any = None):
    """Mean 2D keypoint error per sample.

    Args:
        pred_uv: (..., N, 2) predicted keypoints, pixels.
        gt_uv: (..., N, 2) ground-truth keypoints, pixels.
        valid: optional (..., N) mask (e.g. visibility); NaN for a sample with no valid keypoint.

    Returns:
        (...,) float64 mean Euclidean error, pixels.
    """
    return _mean_point_error(pred_uv, gt_uv, valid, "pred_uv", "gt_uv", dim=2)


# ----------------------------------------------------------------------------------------------------------
# dataset-level statistics (EvalUtil)
# ----------------------------------------------------------------------------------------------------------
def _error_table(errors: Any, visible: Any) -> tuple[np.ndarray, np.ndarray]:
    """errors (..., N) -> (S, N) table and (S, N) visibility; 1-D input is one pool of distances (M, 1)."""
    e = _to_numpy(errors, "errors")
    if e.ndim == 0 or e.size == 0:
        raise ValueError(f"errors: expected shape (S, N) or (M,) with at least one entry, got {tuple(e.shape)}")
    _check_finite(e, "errors")
    if np.any(e < 0):
        raise ValueError("errors: expected non-negative distances")
    vis = np.ones(e.shape, dtype=bool) if visible is None else _mask(visible, "visible", e.shape)
    if e.ndim == 1:
        e, vis = e[:, None], vis[:, None]
    else:
        e, vis = e.reshape(-1, e.shape[-1]), vis.reshape(-1, e.shape[-1])
    if not vis.any():
        raise ValueError("visible: expected at least one visible entry, got none")
    return e, vis


def _thresholds(low: float, high: float, steps: int) -> np.ndarray:
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"low/high: expected finite values, got low={low}, high={high}")
    if not high > low:
        raise ValueError(f"high: expected high > low, got low={low}, high={high}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps: expected an integer >= 2, got {steps}")
    return np.linspace(low, high, int(steps))


def _per_keypoint_pck(e: np.ndarray, vis: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(K, T) PCK of every keypoint with at least one visible sample: mean over samples of ``e <= t``."""
    n = vis.sum(0)
    keep = n > 0
    col = np.sort(np.where(vis, e, np.inf)[:, keep], axis=0)  # invisible entries sort last, never <= t
    counts = np.stack([np.searchsorted(col[:, k], thresholds, side="right") for k in range(col.shape[1])])
    return counts / n[keep][:, None].astype(np.float64)


def epe_summary(errors: Any, visible: Any = None) -> tuple[float, float]:
    """Mean and median end-point error the way the scorer's ``EvalUtil.get_measures`` reports them.

    For each keypoint (column) the mean and the median over its visible samples, then the mean of those
    over keypoints (keypoints never visible are skipped). With every entry visible the mean equals the mean
    of all errors; the median is the mean of per-keypoint medians (not the pooled median).

    Args:
        errors: (S, N) distances (S samples, N keypoints or vertices; leading axes beyond two are merged
            into S), or (M,) one pool of distances. Metres (or pixels).
        visible: optional mask of the same shape as ``errors``.

    Returns:
        (mean, median) floats in the unit of ``errors``.
    """
    e, vis = _error_table(errors, visible)
    keep = vis.any(0)
    e, vis = e[:, keep], vis[:, keep]
    if vis.all():
        means, medians = e.mean(0), np.median(e, axis=0)
    else:
        masked = np.where(vis, e, np.nan)
        means, medians = np.nanmean(masked, axis=0), np.nanmedian(masked, axis=0)
    return float(np.mean(means)), float(np.mean(medians))


def pck_curve(errors: Any, low: float = 0.0, high: float = 0.05, steps: int = 100,
              visible: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Percentage of correct keypoints over ``linspace(low, high, steps)`` thresholds, with ``<=``.

    As the FreiHAND scorer: PCK of each keypoint over its visible samples, then the mean over keypoints
    (keypoints never visible are skipped). With all entries visible this equals the pooled fraction.

    Args:
        errors: (S, N) distances (S samples x N keypoints or vertices; extra leading axes are merged into S),
            or (M,) one pool of distances, metres.
        low, high: threshold range, metres (0-50 mm FreiHAND; ``low=0.02`` for the RHD/STB 20-50 mm curve;
            pixels for 2D, see :func:`pck_auc_2d`).
        steps: number of thresholds (>= 2).
        visible: optional mask of the same shape as ``errors``.

    Returns:
        thresholds (steps,) in the unit of ``errors``; pck (steps,) fractions in [0, 1].
    """
    thresholds = _thresholds(low, high, steps)
    e, vis = _error_table(errors, visible)
    return thresholds, _per_keypoint_pck(e, vis, thresholds).mean(0)


def pck_auc(errors: Any, low: float = 0.0, high: float = 0.05, steps: int = 100, visible: Any = None) -> float:
    """Area under the PCK curve, normalised to [0, 1] (the scorer's ``auc``).

    For each keypoint ``trapezoid(pck_k, thresholds) / trapezoid(ones, thresholds)`` (the denominator is
    ``high - low``), then the mean over keypoints. Defaults are FreiHAND's 0-50 mm with 100 thresholds; the
    RHD/STB convention is ``pck_auc(errors, low=0.02, high=0.05)`` (20-50 mm); 2D is :func:`pck_auc_2d`.

    Args:
        errors: (S, N) or (M,) distances, metres (see :func:`pck_curve`).
        low, high: threshold range, metres.
        steps: number of thresholds (>= 2).
        visible: optional mask of the same shape as ``errors``.

    Returns:
        AUC in [0, 1] (1 when every error is <= ``low``, 0 when every error is > ``high``).
    """
    thresholds = _thresholds(low, high, steps)
    e, vis = _error_table(errors, visible)
    pck = _per_keypoint_pck(e, vis, thresholds)
    norm = _trapezoid(np.ones_like(thresholds), thresholds)
    return float(np.mean(_trapezoid(pck, thresholds, axis=-1) / norm))


def pck_auc_2d(errors_px: Any, low: float = 0.0, high: float = 30.0, steps: int = 100,
               visible: Any = None) -> float:
    """2D PCK AUC over ``linspace(low, high, steps)`` pixels, default 0-30 px (same maths as :func:`pck_auc`).

    Args:
        errors_px: (S, N) or (M,) 2D keypoint distances, pixels.
        low, high: threshold range, pixels.
        steps: number of thresholds (>= 2).
        visible: optional mask of the same shape as ``errors_px``.

    Returns:
        AUC in [0, 1].
    """
    return pck_auc(errors_px, low=low, high=high, steps=steps, visible=visible)


# ----------------------------------------------------------------------------------------------------------
# F-score, silhouettes, sequences
# ----------------------------------------------------------------------------------------------------------
def _f_scores(p: np.ndarray, g: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """p (B, V, 3), g (B, W, 3) -> (B, T) F-scores, one KD-tree per set per sample."""
    out = np.empty((p.shape[0], len(thresholds)))
    for b in range(p.shape[0]):
        d_pred = cKDTree(g[b]).query(p[b], k=1)[0]  # each predicted point to its nearest ground-truth point
        d_gt = cKDTree(p[b]).query(g[b], k=1)[0]  # each ground-truth point to its nearest predicted point
        for i, t in enumerate(thresholds):
            precision = float(np.mean(d_pred < t))
            recall = float(np.mean(d_gt < t))
            out[b, i] = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return out


def _check_threshold(threshold: Any) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold: expected a positive finite float (metres), got {threshold!r}") from None
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"threshold: expected a positive finite float (metres), got {threshold!r}")
    return t


def _cloud_pair(pred_verts: Any, gt_verts: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _points(pred_verts, "pred_verts")
    g = _points(gt_verts, "gt_verts")
    if p.shape[:-2] != g.shape[:-2]:
        raise ValueError(
            f"pred_verts: expected the leading (batch) shape of gt_verts {tuple(g.shape[:-2])} in (..., V, 3), "
            f"got {tuple(p.shape)}"
        )
    return p, g


def f_score(pred_verts: Any, gt_verts: Any, threshold: float):
    """F-score of two point sets per sample (the scorer's ``calculate_fscore``; FreiHAND uses 5 and 15 mm).

    precision = fraction of predicted points whose nearest ground-truth point is closer than ``threshold``;
    recall = fraction of ground-truth points whose nearest predicted point is closer than ``threshold``
    (strict ``<``); F = 2PR / (P + R), 0 when both are 0. The scorer names P and R the other way round,
    which does not change F. No alignment here: pass :func:`procrustes_align` output for the aligned F.

    Args:
        pred_verts: (..., V, 3) predicted points, metres.
        gt_verts: (..., W, 3) ground-truth points, metres (W may differ from V; leading shapes must match).
        threshold: distance threshold, metres (e.g. 0.005, 0.015).

    Returns:
        (...,) float64 F-score in [0, 1].
    """
    t = _check_threshold(threshold)
    p, g = _cloud_pair(pred_verts, gt_verts)
    batch = p.shape[:-2]
    f = _f_scores(p.reshape(-1, *p.shape[-2:]), g.reshape(-1, *g.shape[-2:]), (t,))[:, 0]
    return _scalar(f.reshape(batch))


def silhouette_iou(pred_mask: Any, gt_mask: Any, threshold: float = 0.5):
    """Intersection over union of two silhouettes per sample.

    Boolean masks are used as they are; numeric masks (probabilities, or 0/255 images) are foreground where
    ``value >= threshold``. Two empty masks give 1.0.

    Args:
        pred_mask: (..., H, W) predicted silhouette.
        gt_mask: (..., H, W) ground-truth silhouette.
        threshold: foreground threshold for numeric masks.

    Returns:
        (...,) float64 IoU in [0, 1].
    """
    masks = []
    for x, name in ((pred_mask, "pred_mask"), (gt_mask, "gt_mask")):
        a = _to_numpy(x, name, dtype=None)
        if a.ndim < 2 or a.shape[-1] < 1 or a.shape[-2] < 1:
            raise ValueError(f"{name}: expected shape (..., H, W), got {tuple(a.shape)}")
        if a.dtype != bool:
            a = _to_numpy(a, name)
            _check_finite(a, name)
            a = a >= threshold
        masks.append(a)
    p, g = masks
    if p.shape != g.shape:
        raise ValueError(f"pred_mask: expected the shape of gt_mask {tuple(g.shape)} (..., H, W), got {tuple(p.shape)}")
    inter = np.logical_and(p, g).sum((-2, -1)).astype(np.float64)
    union = np.logical_or(p, g).sum((-2, -1)).astype(np.float64)
    out = np.ones(np.shape(union))
    np.divide(inter, union, out=out, where=union > 0)
    return _scalar(out)


def acceleration_error(pred_seq: Any, gt_seq: Any, fps: float | None = None, valid: Any = None):
    """Acceleration error of a sequence (as HMMR/VIBE ``compute_error_accel``).

    ``a_t = x_t - 2 x_{t+1} + x_{t+2}`` for pred and gt; the error is ``|a_pred - a_gt|`` averaged over the
    T-2 acceleration frames and the N points. Unit: metres per frame^2; with ``fps`` it is multiplied by
    ``fps**2`` to give m/s^2. (Papers usually report mm/frame^2: multiply by 1000.)

    Args:
        pred_seq: (..., T, N, 3) predicted points over T >= 3 frames, metres.
        gt_seq: (..., T, N, 3) ground truth, metres.
        fps: optional frame rate (frames per second).
        valid: optional (..., T) frame mask; an acceleration frame counts only if its three frames are valid
            (VIBE's rule). NaN when no acceleration frame is valid.

    Returns:
        (...,) float64 mean acceleration error, m/frame^2 (m/s^2 with ``fps``).
    """
    p, g = _point_pair(pred_seq, gt_seq, "pred_seq", "gt_seq")
    if p.ndim < 3 or p.shape[-3] < 3:
        raise ValueError(f"pred_seq: expected shape (..., T, N, 3) with T >= 3, got {tuple(p.shape)}")

    def accel(x):
        return x[..., :-2, :, :] - 2 * x[..., 1:-1, :, :] + x[..., 2:, :, :]

    per_frame = np.linalg.norm(accel(p) - accel(g), axis=-1).mean(-1)  # (..., T-2)
    v = None
    if valid is not None:
        m = _mask(valid, "valid", p.shape[:-2])
        v = m[..., :-2] & m[..., 1:-1] & m[..., 2:]
    out = _masked_mean(per_frame, v)
    if fps is not None:
        f = float(fps)
        if not (np.isfinite(f) and f > 0):
            raise ValueError(f"fps: expected a positive finite frame rate, got {fps!r}")
        out = out * f * f
    return _scalar(out)


# ----------------------------------------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------------------------------------
def freihand_scores(pred_xyz: Any, pred_verts: Any, gt_xyz: Any, gt_verts: Any) -> dict[str, float]:
    """Every FreiHAND benchmark number for a set of predictions (the official ``eval.py``, vectorised).

    Joints and vertices are Procrustes-aligned separately (:func:`procrustes_align`); errors are Euclidean;
    means/medians/AUCs are per keypoint (vertex) over samples, then averaged (:func:`epe_summary`,
    :func:`pck_auc`, 0-50 mm, 100 thresholds, ``<=``); F-scores (strict ``<``) are averaged over samples.
    Unaligned numbers are the camera-space ("cs") metrics when the inputs are camera-space.

    Args:
        pred_xyz: (S, J, 3) predicted joints (21 in FreiHAND order), metres.
        pred_verts: (S, V, 3) predicted vertices (778, same topology as ``gt_verts``), metres.
        gt_xyz: (S, J, 3) ground-truth joints, metres.
        gt_verts: (S, V, 3) ground-truth vertices, metres.

    Returns:
        A dict of Python numbers (written as scores.json by the evaluator):

        - ``cs_mpjpe_mm``, ``pa_mpjpe_mm``: mean joint error, unaligned / aligned, millimetres
          (scorer: ``xyz_mean3d``, ``xyz_al_mean3d``, which it prints in cm).
        - ``cs_mpvpe_mm``, ``pa_mpvpe_mm``: mean vertex error, unaligned / aligned, millimetres
          (``mesh_mean3d``, ``mesh_al_mean3d``).
        - ``cs_mpjpe_median_mm``, ``pa_mpjpe_median_mm``, ``cs_mpvpe_median_mm``, ``pa_mpvpe_median_mm``:
          mean over joints (vertices) of the per-joint median error, millimetres (the scorer's median).
        - ``cs_auc_joints``, ``pa_auc_joints``, ``cs_auc_vertices``, ``pa_auc_vertices``: PCK AUC over
          0-50 mm, unitless in [0, 1] (``xyz_auc3d``, ``xyz_al_auc3d``, ``mesh_auc3d``, ``mesh_al_auc3d``).
        - ``f5``, ``f15``: F-score at 5 mm / 15 mm of the unaligned vertices, in [0, 1]
          (``f_score_5``, ``f_score_15``).
        - ``pa_f5``, ``pa_f15``: the same after aligning the vertices (``f_al_score_5``, ``f_al_score_15``).
        - ``num_samples``: S (int).
    """
    pj, gj = _point_pair(pred_xyz, gt_xyz, "pred_xyz", "gt_xyz")
    pv, gv = _point_pair(pred_verts, gt_verts, "pred_verts", "gt_verts")
    if pj.ndim != 3:
        raise ValueError(f"pred_xyz: expected shape (S, J, 3), got {tuple(pj.shape)}")
    if pv.ndim != 3 or pv.shape[0] != pj.shape[0]:
        raise ValueError(f"pred_verts: expected shape (S, V, 3) with S = {pj.shape[0]}, got {tuple(pv.shape)}")

    pj_al = procrustes_align(pj, gj)
    pv_al = procrustes_align(pv, gv)
    scores: dict[str, float] = {}
    for prefix, pred_j, pred_v in (("cs", pj, pv), ("pa", pj_al, pv_al)):
        err_j = np.sqrt(np.sum(np.square(gj - pred_j), axis=-1))  # (S, J)
        err_v = np.sqrt(np.sum(np.square(gv - pred_v), axis=-1))  # (S, V)
        mean_j, median_j = epe_summary(err_j)
        mean_v, median_v = epe_summary(err_v)
        scores[f"{prefix}_mpjpe_mm"] = mean_j * 1000.0
        scores[f"{prefix}_mpvpe_mm"] = mean_v * 1000.0
        scores[f"{prefix}_mpjpe_median_mm"] = median_j * 1000.0
        scores[f"{prefix}_mpvpe_median_mm"] = median_v * 1000.0
        scores[f"{prefix}_auc_joints"] = pck_auc(err_j, 0.0, 0.05, 100)
        scores[f"{prefix}_auc_vertices"] = pck_auc(err_v, 0.0, 0.05, 100)

    f_cs = _f_scores(pv, gv, (0.005, 0.015)).mean(0)
    f_pa = _f_scores(pv_al, gv, (0.005, 0.015)).mean(0)
    scores["f5"], scores["f15"] = float(f_cs[0]), float(f_cs[1])
    scores["pa_f5"], scores["pa_f15"] = float(f_pa[0]), float(f_pa[1])
    scores["num_samples"] = int(pj.shape[0])
    return {k: (v if isinstance(v, int) else float(v)) for k, v in scores.items()}
