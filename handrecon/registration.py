"""Camera-space root recovery: adaptive 2D-1D registration (CMR, CVPR 2021, section 3.2), batched.

A network predicts a root-relative mesh (camera orientation, metres), its 21 keypoints, 2D keypoints
(pixels) and often a silhouette. The unknown is the translation ``t`` that puts the mesh in camera space,
``p_cam = p_rel + t``; scale is not solved (see REFERENCE.md, "Root recovery").

- **2D** (:func:`register_root_2d`): ``t`` minimising the squared pixel reprojection error of the confident
  keypoints, with the authors' outlier rejection. The z-multiplied (algebraic) form of the projection is
  linear in ``t`` and gives an exact start; a few batched Gauss-Newton steps then minimise the true pixel
  error. No per-sample solver, no per-sample Python loop in the maths.
- **1D** (:func:`register_root_1d`): the silhouette's largest outer contour and the projected mesh are
  projected on ``A`` directions over 180 degrees; ``t`` makes the min/max spans agree (2 residuals per
  direction). The extreme vertex of each span changes with ``t``, so the solver is an active-set
  Gauss-Newton (pick the extreme vertices at the current ``t``, linearise, step), batched.
- **Fusion** (:func:`fuse_roots`, Eq. 5): with ``d = |t2D - t1D|``: ``d > delta1`` -> 1D, ``d <= delta2``
  -> 2D, between a linear blend whose 1D weight is ``(d - delta2) / (delta1 - delta2)`` (continuous at both
  thresholds; Eq. 5 as printed has a sign slip).
- **Baseline** (:func:`register_root_pnp`): OpenCV's full 6-DoF PnP on the keypoints, for comparison.

Conventions: OpenCV pinhole camera (x right, y down, z forward), pixel ``i`` centred at coordinate ``i``.
Inputs may be numpy arrays or torch tensors; results come back as the kind of the first argument
(torch: its dtype and device). The maths runs in float64 numpy.

Nothing returned is NaN: an estimate that cannot be made holds :data:`FALLBACK_ROOT` and is flagged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch

from handrecon.camera import check_intrinsics

__all__ = [
    "FALLBACK_ROOT",
    "DEPTH_RANGE",
    "Registration",
    "Root2D",
    "Root1D",
    "RootPnP",
    "register_root",
    "register_root_2d",
    "register_root_1d",
    "fuse_roots",
    "register_root_pnp",
    "contour_spans",
    "span_axes",
]

#: Root used where no estimate can be made (metres): straight ahead, the authors' start ``t0``.
FALLBACK_ROOT = (0.0, 0.0, 0.6)
#: Bounds on the root's depth ``t_z`` (metres) while solving.
DEPTH_RANGE = (0.05, 2.0)
#: Keypoints with confidence at or below this are not used (the authors' gate).
CONFIDENCE_GATE = 0.1
#: Fewest confident keypoints for a 2D estimate (3 unknowns, 2 equations per keypoint, some redundancy).
MIN_KEYPOINTS = 4
#: Outer contours enclosing less than this (px^2, polygon through the boundary pixel centres) count as empty.
MIN_CONTOUR_AREA = 4.0


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------
class Root2D(NamedTuple):
    """Result of :func:`register_root_2d` (B = batch, N = keypoints)."""

    root: object  # (B,3) metres; FALLBACK_ROOT where not valid
    valid: object  # (B,) bool: at least MIN_KEYPOINTS confident keypoints
    inliers: object  # (B,N) bool: keypoints used in the final solve
    rmse: object  # (B,) px: RMS pixel error over the inliers (0 where not valid)


class Root1D(NamedTuple):
    """Result of :func:`register_root_1d` (B = batch)."""

    root: object  # (B,3) metres; FALLBACK_ROOT where not valid
    valid: object  # (B,) bool: a usable contour was found
    rmse: object  # (B,) px: RMS span mismatch over the 2A residuals (0 where not valid)


class RootPnP(NamedTuple):
    """Result of :func:`register_root_pnp` (B = batch)."""

    root: object  # (B,3) metres: the translation of the keypoints' origin (the root); FALLBACK_ROOT if failed
    rotation: object  # (B,3,3) the rotation PnP found (identity if failed); ours assume identity
    valid: object  # (B,) bool


@dataclasses.dataclass
class Registration:
    """Result of :func:`register_root` (B = batch, N = keypoints).

    Attributes:
        root: (B,3) camera-space root, metres (``vertices + root[:, None]`` is the camera-space mesh).
        root_2d, root_1d: (B,3) the two estimates; :data:`FALLBACK_ROOT` where ``valid_2d`` / ``valid_1d``
            is False.
        mode: B strings: "2d" | "1d" | "blend" | "failed" (no usable keypoints nor silhouette; ``root`` is
            then :data:`FALLBACK_ROOT`).
        valid: (B,) bool, False only for "failed".
        valid_2d, valid_1d: (B,) bool, which estimates exist.
        distance: (B,) ``|root_2d - root_1d|`` metres where both exist, else 0.
        weight_1d: (B,) weight of ``root_1d`` in ``root`` (0 for "2d" and "failed", 1 for "1d").
        inliers: (B,N) bool, keypoints kept by the 2D step; num_inliers (B,) their count.
        rmse_2d, rmse_1d: (B,) px, residual RMS of each fit (0 where the estimate does not exist).
    """

    root: object
    root_2d: object
    root_1d: object
    mode: list
    valid: object
    valid_2d: object
    valid_1d: object
    distance: object
    weight_1d: object
    inliers: object
    num_inliers: object
    rmse_2d: object
    rmse_1d: object


# ---------------------------------------------------------------------------------------------------------
# Input checks and conversions
# ---------------------------------------------------------------------------------------------------------
def _to_numpy(x, name):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} must be an array or tensor, got {type(x).__name__}") from e
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    return a


def _check(x, name, shape, batch=None, first="vertices"):
    """float64 array of ``shape`` (ints; -1 = any, 'B' = the batch size of the argument ``first``), finite;
    names ``name`` on failure."""
    a = _to_numpy(x, name).astype(np.float64, copy=False)
    expected = "(" + ", ".join("B" if s == "B" else ("*" if s == -1 else str(s)) for s in shape) + ")"
    if a.ndim != len(shape):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(a.shape)}")
    for s, d in zip(shape, a.shape):
        if s == "B":
            if batch is not None and d != batch:
                raise ValueError(f"{name} has batch size {d}, but {first} has {batch}")
        elif s != -1 and s != d:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_K(K, batch):
    K = _to_numpy(K, "K").astype(np.float64, copy=False)
    if K.ndim == 2:  # one camera for the whole batch
        K = np.broadcast_to(K, (batch, *K.shape))
    if K.ndim != 3 or K.shape[1:] != (3, 3) or K.shape[0] != batch:
        raise ValueError(f"K must have shape (B, 3, 3) or (3, 3) with B = {batch}, got {tuple(K.shape)}")
    check_intrinsics(K, "K")  # finite, positive focal lengths, last row (0, 0, 1)
    return np.ascontiguousarray(K)


def _check_confidence(confidence, batch, n, first="vertices"):
    if confidence is None:
        return np.ones((batch, n))
    c = _check(confidence, "confidence", ("B", n), batch, first)
    if (c < 0).any() or (c > 1).any():
        raise ValueError("confidence must lie in [0, 1]")
    return c


def _silhouette_masks(silhouette, batch):
    """List of B boolean (H,W) masks or None. Floats are probabilities (> 0.5 is hand); bool as is;
    integer masks may be 0/1 or 0/255."""
    if silhouette is None:
        return [None] * batch
    if isinstance(silhouette, (list, tuple)):
        items = list(silhouette)
        if len(items) != batch:
            raise ValueError(f"silhouette has {len(items)} entries, expected {batch} (the batch size)")
    else:
        s = _to_numpy(silhouette, "silhouette")
        if s.ndim != 3 or s.shape[0] != batch:
            raise ValueError(f"silhouette must have shape (B, H, W) with B = {batch}, got {tuple(s.shape)}")
        items = list(s)
    masks = []
    for i, m in enumerate(items):
        if m is None:
            masks.append(None)
            continue
        m = _to_numpy(m, f"silhouette[{i}]")
        if m.ndim != 2:
            raise ValueError(f"silhouette[{i}] must have shape (H, W), got {tuple(m.shape)}")
        if m.dtype == bool:
            masks.append(m)
            continue
        if not np.isfinite(m).all():
            raise ValueError(f"silhouette[{i}] contains NaN or inf")
        if np.issubdtype(m.dtype, np.integer):
            masks.append(m > (127 if m.max(initial=0) > 1 else 0))
        else:
            masks.append(m > 0.5)
    return masks


def _wrap(like, *arrays):
    """Arrays back to the kind of ``like``: torch tensors on its device, floats in its float dtype (float64
    if it is not floating), bools and integers kept."""
    if not isinstance(like, torch.Tensor):
        return arrays
    dt = like.dtype if like.is_floating_point() else torch.float64

    def one(a):
        if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
            return torch.as_tensor(a, device=like.device)
        return torch.as_tensor(a, device=like.device, dtype=dt)

    return tuple(one(np.ascontiguousarray(a)) for a in arrays)


# ---------------------------------------------------------------------------------------------------------
# Batched solver pieces
# ---------------------------------------------------------------------------------------------------------
def _solve3(H, g, lam):
    """Solve (H + lam diag(H) + eps I) x = g for a batch of 3x3 systems; zero systems give x = 0."""
    d = np.diagonal(H, axis1=1, axis2=2)
    eps = 1e-12 * (d.max(axis=1) + 1e-300) + 1e-300
    A = H + (lam[:, None] * d + eps[:, None])[:, :, None] * np.eye(3)
    return np.linalg.solve(A, g[..., None])[..., 0]


def _clamp_depth(t):
    t[:, 2] = np.clip(t[:, 2], *DEPTH_RANGE)
    return t


def _to_ray(t):
    """Root t (B,3) -> q = (t_x / t_z, t_y / t_z, 1 / t_z): direction of the root's ray and inverse depth."""
    return np.stack([t[:, 0] / t[:, 2], t[:, 1] / t[:, 2], 1.0 / t[:, 2]], -1)


def _from_ray(q):
    """Inverse of :func:`_to_ray` and d t / d q (B,3,3)."""
    a, b, w = q[:, 0], q[:, 1], q[:, 2]
    t = np.stack([a / w, b / w, 1.0 / w], -1)
    dt = np.zeros((len(q), 3, 3))
    dt[:, 0, 0] = dt[:, 1, 1] = 1.0 / w
    dt[:, 0, 2], dt[:, 1, 2], dt[:, 2, 2] = -a / w ** 2, -b / w ** 2, -1.0 / w ** 2
    return t, dt


def _levenberg_marquardt(evaluate, t, iterations, tol=1e-12):
    """Batched damped Gauss-Newton on ``sum_i w_i r_i(t)^2`` with t (B,3).

    ``evaluate(t) -> (r (B,M), J = dr/dt (B,M,3), w (B,M))``. The unknowns are the root's ray and inverse
    depth, ``q = (t_x / t_z, t_y / t_z, 1 / t_z)``: projections are nearly linear in q (a span scales with
    1 / t_z), so Gauss-Newton converges in a few steps even from a start twice too far, where steps in t
    overshoot through the camera. Depth stays in :data:`DEPTH_RANGE`. A step is kept only where it lowers
    the cost (so the active-set 1D problem, whose residuals switch vertices, cannot climb); the damping
    shrinks on success and grows on failure. Stops early once no sample's q moves more than ``tol``.
    """
    w_lo, w_hi = 1.0 / DEPTH_RANGE[1], 1.0 / DEPTH_RANGE[0]

    def in_q(q):
        t, dt = _from_ray(q)
        r, J, w = evaluate(t)
        return r, J @ dt, w

    q = _to_ray(_clamp_depth(np.array(t, dtype=np.float64)))
    r, J, w = in_q(q)
    cost = (w * r * r).sum(1)
    lam = np.full(len(q), 1e-6)
    for _ in range(iterations):
        Jw = J * w[..., None]
        H = Jw.transpose(0, 2, 1) @ J
        g = (Jw * r[..., None]).sum(1)
        step = -_solve3(H, g, lam)
        # At a depth bound with the step pushing out of it: solve for the ray alone (active set).
        out = ((q[:, 2] <= w_lo) & (step[:, 2] < 0)) | ((q[:, 2] >= w_hi) & (step[:, 2] > 0))
        if out.any():
            Hr, gr = H[out].copy(), g[out].copy()
            Hr[:, 2, :], Hr[:, :, 2], gr[:, 2] = 0.0, 0.0, 0.0
            Hr[:, 2, 2] = 1.0
            step[out] = -_solve3(Hr, gr, lam[out])
        q_new = q + step
        q_new[:, 2] = q_new[:, 2].clip(w_lo, w_hi)
        r_new, J_new, w_new = in_q(q_new)
        cost_new = (w_new * r_new * r_new).sum(1)
        ok = cost_new <= cost
        q = np.where(ok[:, None], q_new, q)
        r = np.where(ok[:, None], r_new, r)
        J = np.where(ok[:, None, None], J_new, J)
        w = np.where(ok[:, None], w_new, w)
        cost = np.where(ok, cost_new, cost)
        lam = np.where(ok, lam * 0.1, lam * 10.0).clip(1e-9, 1e9)
        if np.abs(step).max(initial=0) < tol:
            break
    return _from_ray(q)[0], cost


def _project_jacobian(P, K):
    """Pixels (...,2) of camera points P (...,3) and d(pixels)/d(t) (...,2,3) for ``P = X + t``."""
    Z = np.maximum(P[..., 2], 1e-4)  # points behind the camera are clamped, never divided by <= 0
    k = K.reshape(K.shape[0], *([1] * (P.ndim - 2)), 3, 3)
    fx, s, cx, fy, cy = k[..., 0, 0], k[..., 0, 1], k[..., 0, 2], k[..., 1, 1], k[..., 1, 2]
    x, y = P[..., 0] / Z, P[..., 1] / Z
    uv = np.stack([fx * x + s * y + cx, fy * y + cy], -1)
    inv = 1.0 / Z
    zero = np.zeros_like(x)
    du = np.stack([fx * inv, s * inv, -(fx * x + s * y) * inv], -1)
    dv = np.stack([zero, fy * inv, -fy * y * inv], -1)
    return uv, np.stack([du, dv], -2)


# ---------------------------------------------------------------------------------------------------------
# 2D registration
# ---------------------------------------------------------------------------------------------------------
def _linear_root(X, p, K, w):
    """Algebraic least squares: ``(x_i + t_x) - xn_i (z_i + t_z) = 0`` and the same for y, with normalised
    image coordinates ``(xn, yn, 1) = K^-1 (u, v, 1)``. Linear in t; exact for noise-free data."""
    Kinv = np.linalg.inv(K)
    homog = np.concatenate([p, np.ones_like(p[..., :1])], -1) @ Kinv.transpose(0, 2, 1)
    n = homog[..., :2] / homog[..., 2:3]
    B, N = w.shape
    A = np.zeros((B, N, 2, 3))
    A[..., 0, 0] = 1.0
    A[..., 1, 1] = 1.0
    A[..., :, 2] = -n
    b = n * X[..., 2:3] - X[..., :2]  # (B,N,2)
    A = A.reshape(B, 2 * N, 3)
    b = b.reshape(B, 2 * N)
    ww = np.repeat(w, 2, axis=1)
    Aw = A * ww[..., None]
    t = _solve3(Aw.transpose(0, 2, 1) @ A, (Aw * b[..., None]).sum(1), np.zeros(B))
    return _clamp_depth(t)


def _pixel_errors(X, p, K, t):
    uv, _ = _project_jacobian(X + t[:, None], K)
    return np.linalg.norm(uv - p, axis=-1)


def _solve_2d(X, p, K, w, t, iterations):
    B, N = w.shape

    def evaluate(t):
        uv, J = _project_jacobian(X + t[:, None], K)
        return (uv - p).reshape(B, 2 * N), J.reshape(B, 2 * N, 3), np.repeat(w, 2, axis=1)

    return _levenberg_marquardt(evaluate, t, iterations)[0]


def _register_2d(X, p, K, conf, rounds=5, min_inliers=13, stop_error=2.0, iterations=8):
    B, N = conf.shape
    mask = conf > CONFIDENCE_GATE
    valid = mask.sum(1) >= MIN_KEYPOINTS
    mask &= valid[:, None]
    w = mask.astype(np.float64)
    t = _linear_root(X, p, K, w)
    t = _solve_2d(X, p, K, w, t, iterations)
    active = valid.copy()
    # The authors' rejection: after each solve, stop if the mean residual is small, otherwise keep the
    # joints within mean + std of the residuals and solve again, unless fewer than 13 would remain.
    for _ in range(rounds - 1):
        err = _pixel_errors(X, p, K, t)
        n = np.maximum(mask.sum(1), 1)
        mean = (err * mask).sum(1) / n
        std = np.sqrt((((err - mean[:, None]) ** 2) * mask).sum(1) / n)
        keep = mask & (err <= (mean + std)[:, None])
        active &= (mean > stop_error) & (keep.sum(1) >= min(min_inliers, N)) & (keep.sum(1) < mask.sum(1))
        if not active.any():
            break
        idx = np.flatnonzero(active)
        mask[idx] = keep[idx]
        w_a = mask[idx].astype(np.float64)
        t[idx] = _solve_2d(X[idx], p[idx], K[idx], w_a, t[idx], iterations)
    err = _pixel_errors(X, p, K, t)
    rmse = np.sqrt((err ** 2 * mask).sum(1) / np.maximum(mask.sum(1), 1))
    t[~valid] = FALLBACK_ROOT
    return t, valid, mask, np.where(valid, rmse, 0.0)


def register_root_2d(keypoints, keypoints_2d, K, confidence=None, rounds: int = 5, min_inliers: int = 13,
                     iterations: int = 8) -> Root2D:
    """Root from 2D keypoints: least-squares pixel reprojection with the authors' outlier rejection.

    Keypoints with confidence <= 0.1 are dropped. Each round solves, then (if the mean pixel error is above
    2 px) keeps the keypoints whose error is at most mean + std and solves again, for at most ``rounds``
    solves, never going below ``min_inliers`` keypoints. Each solve starts from the algebraic linear
    solution (first round) or the previous root and takes up to ``iterations`` damped Gauss-Newton steps on
    the pixel error, batched. Depth is kept in :data:`DEPTH_RANGE`.

    Args:
        keypoints: (B,N,3) root-relative keypoints, metres, camera orientation (N = 21 usually).
        keypoints_2d: (B,N,2) pixels.
        K: (B,3,3) or (3,3) intrinsics.
        confidence: (B,N) in [0,1] or None (all 1).

    Returns:
        :class:`Root2D` ``(root (B,3), valid (B,), inliers (B,N), rmse (B,))``; ``valid`` is False with
        fewer than 4 confident keypoints, and ``root`` is then :data:`FALLBACK_ROOT`.
    """
    X = _check(keypoints, "keypoints", ("B", -1, 3))
    B, N = X.shape[:2]
    p = _check(keypoints_2d, "keypoints_2d", ("B", N, 2), B, "keypoints")
    Kn = _check_K(K, B)
    conf = _check_confidence(confidence, B, N, "keypoints")
    if rounds < 1 or iterations < 1:
        raise ValueError(f"rounds and iterations must be >= 1, got {rounds} and {iterations}")
    t, valid, mask, rmse = _register_2d(X, p, Kn, conf, rounds, min_inliers, iterations=iterations)
    return Root2D(*_wrap(keypoints, t, valid, mask, rmse))


# ---------------------------------------------------------------------------------------------------------
# 1D registration
# ---------------------------------------------------------------------------------------------------------
def span_axes(num_axes: int = 12) -> np.ndarray:
    """(A,2) unit directions at ``k * 180 / A`` degrees, k = 0..A-1 (A = 12: 0, 15, ..., 165)."""
    if int(num_axes) != num_axes or num_axes < 2:
        raise ValueError(f"num_axes must be an integer >= 2, got {num_axes}")
    a = np.arange(int(num_axes)) * (math.pi / num_axes)
    return np.stack([np.cos(a), np.sin(a)], -1)


def _lattice_gap(axes):
    """(A,) expected distance (px) from the extreme boundary pixel centre of a thresholded mask to the true
    extreme of the shape along each axis.

    A mask keeps the pixels whose centre is inside the shape, so the contour (through boundary pixel
    centres) lies inside the shape. Along an axis-aligned direction the pixel centres project every 1 px
    and the true extreme lies uniformly within the next pixel: 0.5 px on average; along a diagonal they
    project every 1/sqrt(2) px: 0.354. Along other directions the projections are dense and the gap near a
    curved extreme is about 0.25 px (measured on discs of radius 2-8 px, the size of fingertips here;
    0.1-0.2 for flatter curves). Without this correction the spans come out about 0.6 px short on average
    and the depth about 1% too far on a 60 px hand.
    """
    a = np.abs(axes)
    gap = np.full(len(axes), 0.25)
    gap[np.isclose(a.min(1), 0.0, atol=1e-9)] = 0.5
    gap[np.isclose(a[:, 0], a[:, 1], atol=1e-9)] = 0.5 / math.sqrt(2)
    return gap


def _largest_contour(mask):
    """(n,2) float points (x, y) of the largest outer contour of a boolean mask, or None."""
    if mask is None or not mask.any():
        return None
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    areas = [cv2.contourArea(c) for c in contours]
    k = int(np.argmax(areas))
    if areas[k] < MIN_CONTOUR_AREA:
        return None
    return contours[k].reshape(-1, 2).astype(np.float64)


def _contour_spans(masks, axes):
    B, A = len(masks), len(axes)
    spans = np.zeros((B, A, 2))
    valid = np.zeros(B, dtype=bool)
    half = _lattice_gap(axes)
    for b, m in enumerate(masks):  # contour extraction is per image; everything after is batched
        pts = _largest_contour(m)
        if pts is None:
            continue
        s = pts @ axes.T
        spans[b, :, 0] = s.min(0) - half
        spans[b, :, 1] = s.max(0) + half
        valid[b] = True
    return spans, valid


def contour_spans(silhouette, num_axes: int = 12):
    """Spans of the silhouette's largest outer contour on ``num_axes`` directions.

    Args:
        silhouette: (B,H,W) probabilities (> 0.5 is hand) or bool mask, or a list of B (H,W) masks / None.

    Returns:
        ``(spans (B,A,2) [min, max] pixels, valid (B,) bool)``; spans are 0 where not valid (no contour
        of at least :data:`MIN_CONTOUR_AREA`).
    """
    B = len(silhouette)
    spans, valid = _contour_spans(_silhouette_masks(silhouette, B), span_axes(num_axes))
    return spans, valid


def _projected_spans(V, K, t, axes, Vt=None):
    """Spans of the projected mesh ``V + t`` on ``axes``: extreme vertex ids (B,A,2) and span values
    (B,A,2) [min, max] in pixels. ``Vt``: V transposed to (B,3,V), contiguous, if at hand."""
    Pt = (V.transpose(0, 2, 1) if Vt is None else Vt) + t[:, :, None]  # (B,3,V): vertex axis contiguous
    Z = np.maximum(Pt[:, 2:3], 1e-4)  # vertices behind the camera are clamped, never divided by <= 0
    xy = Pt[:, :2] / Z  # (B,2,V) normalised coordinates
    # a . (u, v) = a_x (fx x + s y + cx) + a_y (fy y + cy): a (B,A,2) linear map of (x, y) plus a constant.
    fx, sk, cx, fy, cy = K[:, 0, 0], K[:, 0, 1], K[:, 0, 2], K[:, 1, 1], K[:, 1, 2]
    ax, ay = axes[:, 0], axes[:, 1]
    lin = np.stack([ax * fx[:, None], ax * sk[:, None] + ay * fy[:, None]], -1)  # (B,A,2)
    const = ax * cx[:, None] + ay * cy[:, None]  # (B,A)
    s = lin @ xy  # (B,A,V); the vertex axis last keeps argmin/argmax contiguous (fast)
    ids = np.stack([s.argmin(2), s.argmax(2)], -1)  # (B,A,2)
    vals = np.take_along_axis(s, ids, 2) + const[..., None]
    return ids, vals


def _solve_1d(V, K, spans, axes, t, iterations):
    B, A = spans.shape[:2]
    target = spans.reshape(B, 2 * A)
    ar = np.arange(B)[:, None]
    a2 = np.repeat(axes, 2, axis=0)  # (2A,2), matches the [min, max] interleaving of the residuals
    w = np.ones((B, 2 * A))

    Vt = np.ascontiguousarray(V.transpose(0, 2, 1))

    def evaluate(t):
        # Active set: the extreme vertices at this t; residuals and Jacobian only at those 2A vertices.
        ids = _projected_spans(V, K, t, axes, Vt)[0].reshape(B, 2 * A)
        uve, Je = _project_jacobian(V[ar, ids] + t[:, None], K)  # (B,2A,2), (B,2A,2,3)
        r = (uve * a2).sum(-1) - target
        Jr = (Je * a2[..., None]).sum(-2)
        return r, Jr, w

    return _levenberg_marquardt(evaluate, t, iterations)


def _guess_1d(V, K, spans, axes):
    """Root from the contour alone: depth from the ratio of the mesh's metric spans (orthographic) to the
    contour's pixel spans, then the in-plane offset that centres the spans."""
    B = len(V)
    f = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    sm = axes @ V[..., :2].transpose(0, 2, 1)  # (B,A,V) metres
    metric = sm.max(2) - sm.min(2)
    pix = np.maximum(spans[..., 1] - spans[..., 0], 1.0)
    z = np.median(f[:, None] * metric / pix, axis=1).clip(*DEPTH_RANGE)
    t = np.stack([np.zeros(B), np.zeros(B), z], -1)
    vals = _projected_spans(V, K, t, axes)[1]
    shift = 0.5 * (spans.sum(-1) - vals.sum(-1))  # (B,A) px along each axis
    d = np.linalg.lstsq(axes, shift.T, rcond=None)[0].T  # (B,2) image shift whose projections fit best
    t[:, 0] = d[:, 0] * z / K[:, 0, 0]
    t[:, 1] = d[:, 1] * z / K[:, 1, 1]
    return t


def _span_cost(V, K, spans, axes, t):
    vals = _projected_spans(V, K, t, axes)[1]
    return ((vals - spans) ** 2).sum((1, 2))


def _start_1d(V, K, spans, axes, init=None, init_valid=None):
    """Start for the 1D solve: the better (by the 1D cost) of ``init`` (where valid) and the silhouette
    guess; keeps a bad 2D root from trapping the 1D solve."""
    guess = _guess_1d(V, K, spans, axes)
    if init is None:
        return guess
    init = _clamp_depth(np.array(init, dtype=np.float64))
    better = _span_cost(V, K, spans, axes, init) < _span_cost(V, K, spans, axes, guess)
    use = better if init_valid is None else (better & init_valid)
    return np.where(use[:, None], init, guess)


def _register_1d(V, K, spans, valid, axes, init=None, init_valid=None, iterations=10):
    B = len(V)
    t = np.tile(np.asarray(FALLBACK_ROOT, dtype=np.float64), (B, 1))
    rmse = np.zeros(B)
    idx = np.flatnonzero(valid)
    if len(idx):
        sub = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
        t0 = _start_1d(V[idx], K[idx], spans[idx], axes, sub(init), sub(init_valid))
        t_idx, cost = _solve_1d(V[idx], K[idx], spans[idx], axes, t0, iterations)
        t[idx] = t_idx
        rmse[idx] = np.sqrt(cost / (2 * len(axes)))
    return t, rmse


def register_root_1d(vertices, silhouette, K, init=None, num_axes: int = 12, iterations: int = 10) -> Root1D:
    """Root from the silhouette: match the 1D spans of the contour and of the projected mesh.

    The spans are taken on ``num_axes`` directions over 180 degrees (:func:`span_axes`); each direction gives
    two residuals (min and max, pixels). The solve is an active-set damped Gauss-Newton, batched: at the
    current root pick each span's extreme vertex, linearise the perspective projection there, step, keep
    the step if the cost fell. It starts from the better of ``init`` and a guess from the contour's size
    and centre.

    Args:
        vertices: (B,V,3) root-relative mesh, metres, camera orientation.
        silhouette: (B,H,W) probabilities (> 0.5 is hand) or bool mask in the pixel frame of ``K``, or a
            list of B masks / None.
        K: (B,3,3) or (3,3) intrinsics.
        init: (B,3) optional start (e.g. the 2D root).

    Returns:
        :class:`Root1D` ``(root (B,3), valid (B,), rmse (B,))``; ``valid`` is False where the silhouette is
        missing or empty, and ``root`` is then :data:`FALLBACK_ROOT`.
    """
    V = _check(vertices, "vertices", ("B", -1, 3))
    B = len(V)
    Kn = _check_K(K, B)
    axes = span_axes(num_axes)
    if init is not None:
        init = _check(init, "init", ("B", 3), B)
    spans, valid = _contour_spans(_silhouette_masks(silhouette, B), axes)
    t, rmse = _register_1d(V, Kn, spans, valid, axes, init, iterations=iterations)
    return Root1D(*_wrap(vertices, t, valid, rmse))


# ---------------------------------------------------------------------------------------------------------
# Fusion and the full pipeline
# ---------------------------------------------------------------------------------------------------------
def _check_thresholds(thresholds):
    try:
        d1, d2 = (float(x) for x in thresholds)
    except Exception as e:
        raise ValueError(f"thresholds must be two numbers (delta1, delta2), got {thresholds!r}") from e
    if not (math.isfinite(d1) and math.isfinite(d2) and d1 > d2 >= 0):
        raise ValueError(f"thresholds must satisfy delta1 > delta2 >= 0, got {thresholds!r}")
    return d1, d2


def _fuse(t2, t1, d1, d2):
    d = np.linalg.norm(t2 - t1, axis=-1)
    w = np.clip((d - d2) / (d1 - d2), 0.0, 1.0)
    root = (1.0 - w)[..., None] * t2 + w[..., None] * t1
    mode = np.where(d > d1, "1d", np.where(d > d2, "blend", "2d")).astype(object)
    return root, w, d, mode


def fuse_roots(root_2d, root_1d, thresholds: Sequence[float] = (0.06, 0.02)):
    """Adaptive fusion (CMR Eq. 5, continuous form).

    With ``d = |root_2d - root_1d|`` and ``thresholds = (delta1, delta2)``, ``delta1 > delta2``:
    ``d > delta1`` -> ``root_1d`` (the 2D pose is the fragile cue when the two disagree a lot);
    ``d <= delta2`` -> ``root_2d`` (joint correspondences are explicit); between, the linear blend with
    weight ``w = (d - delta2) / (delta1 - delta2)`` on ``root_1d``, which is continuous at both thresholds.

    Args:
        root_2d, root_1d: (...,3) metres.

    Returns:
        ``(root (...,3), weight_1d (...), mode)``; mode is a list of "2d" | "blend" | "1d" for (B,3)
        input (a string for a single (3,) root).
    """
    d1, d2 = _check_thresholds(thresholds)
    t2 = _to_numpy(root_2d, "root_2d").astype(np.float64)
    t1 = _to_numpy(root_1d, "root_1d").astype(np.float64)
    for name, t in (("root_2d", t2), ("root_1d", t1)):
        if t.ndim < 1 or t.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (..., 3), got {tuple(t.shape)}")
        if not np.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf")
    if t2.shape != t1.shape:
        raise ValueError(f"root_1d must have the shape of root_2d {tuple(t2.shape)}, got {tuple(t1.shape)}")
    root, w, _, mode = _fuse(t2, t1, d1, d2)
    root, w = _wrap(root_2d, root, w)
    return root, w, (mode.tolist() if mode.ndim else str(mode))


def register_root(vertices, keypoints, keypoints_2d, K, silhouette=None, confidence=None,
                  num_axes: int = 12, thresholds: Sequence[float] = (0.06, 0.02)) -> Registration:
    """Adaptive 2D-1D registration of a root-relative mesh into camera space (CMR section 3.2).

    Args:
        vertices: (B,V,3) root-relative mesh, metres, camera orientation.
        keypoints: (B,N,3) its root-relative keypoints (N = 21, FreiHAND order).
        keypoints_2d: (B,N,2) predicted 2D keypoints, pixels.
        K: (B,3,3) or (3,3) intrinsics of the image the 2D cues live in.
        silhouette: (B,H,W) probabilities or bool mask in that image (> 0.5 is hand), a list of B masks /
            None, or None.
        confidence: (B,N) 2D keypoint confidences in [0,1], or None (all 1).
        num_axes: span directions for 1D (12: every 15 degrees).
        thresholds: (delta1, delta2) metres for the fusion.

    Degradation (never NaN): no or empty silhouette -> "2d"; fewer than 4 keypoints with confidence > 0.1
    but a silhouette -> "1d"; neither -> "failed" with ``valid`` False and ``root`` =
    :data:`FALLBACK_ROOT` (0, 0, 0.6). Bad inputs raise ValueError naming the argument.

    Returns:
        :class:`Registration`, arrays of the kind of ``vertices``.
    """
    V = _check(vertices, "vertices", ("B", -1, 3))
    B = len(V)
    if V.shape[1] < 1:
        raise ValueError("vertices must have at least one vertex")
    X = _check(keypoints, "keypoints", ("B", -1, 3), B)
    N = X.shape[1]
    p = _check(keypoints_2d, "keypoints_2d", ("B", N, 2), B)
    Kn = _check_K(K, B)
    conf = _check_confidence(confidence, B, N)
    axes = span_axes(num_axes)
    d1, d2 = _check_thresholds(thresholds)
    masks = _silhouette_masks(silhouette, B)

    t2, valid2, inliers, rmse2 = _register_2d(X, p, Kn, conf)
    spans, valid1 = _contour_spans(masks, axes)
    t1, rmse1 = _register_1d(V, Kn, spans, valid1, axes, init=t2, init_valid=valid2)

    root, w, d, mode = _fuse(t2, t1, d1, d2)
    only1 = valid1 & ~valid2
    only2 = valid2 & ~valid1
    failed = ~(valid1 | valid2)
    root[only1], w[only1], mode[only1] = t1[only1], 1.0, "1d"
    root[only2], w[only2], mode[only2] = t2[only2], 0.0, "2d"
    root[failed], w[failed], mode[failed] = FALLBACK_ROOT, 0.0, "failed"
    d = np.where(valid1 & valid2, d, 0.0)
    r, r2, r1, ok, ok2, ok1, dist, wt, inl, ninl, e2, e1 = _wrap(
        vertices, root, t2, t1, ~failed, valid2, valid1, d, w, inliers, inliers.sum(1), rmse2, rmse1)
    return Registration(root=r, root_2d=r2, root_1d=r1, mode=mode.tolist(), valid=ok, valid_2d=ok2,
                        valid_1d=ok1, distance=dist, weight_1d=wt, inliers=inl, num_inliers=ninl,
                        rmse_2d=e2, rmse_1d=e1)


# ---------------------------------------------------------------------------------------------------------
# Baseline
# ---------------------------------------------------------------------------------------------------------
def register_root_pnp(keypoints, keypoints_2d, K, confidence=None) -> RootPnP:
    """Baseline: OpenCV PnP with a free rotation, per sample.

    Solves the full 6-DoF pose of the root-relative keypoints (``cv2.SOLVEPNP_EPNP`` start, then
    ``cv2.solvePnPRefineLM`` on the pixel error) using the keypoints with confidence > 0.1, no outlier
    rejection, and reports the translation, which is the camera-space root because the root keypoint sits
    at the origin. Unlike :func:`register_root_2d` (rotation fixed to identity, as the network predicts the
    mesh in camera orientation) the rotation is free, so it has three more unknowns to spend on noise.

    Args:
        keypoints: (B,N,3) root-relative, metres. keypoints_2d: (B,N,2) pixels. K: (B,3,3) or (3,3).
        confidence: (B,N) or None.

    Returns:
        :class:`RootPnP` ``(root (B,3), rotation (B,3,3), valid (B,))``; with fewer than 6 confident
        keypoints or a failed solve ``valid`` is False and ``root`` is :data:`FALLBACK_ROOT`.
    """
    X = _check(keypoints, "keypoints", ("B", -1, 3))
    B, N = X.shape[:2]
    p = _check(keypoints_2d, "keypoints_2d", ("B", N, 2), B, "keypoints")
    Kn = _check_K(K, B)
    conf = _check_confidence(confidence, B, N, "keypoints")
    root = np.tile(np.asarray(FALLBACK_ROOT, dtype=np.float64), (B, 1))
    rot = np.tile(np.eye(3), (B, 1, 1))
    valid = np.zeros(B, dtype=bool)
    for b in range(B):
        sel = conf[b] > CONFIDENCE_GATE
        if sel.sum() < 6:
            continue
        obj, img = X[b, sel].copy(), p[b, sel].copy()
        try:
            ok, rvec, tvec = cv2.solvePnP(obj, img, Kn[b], None, flags=cv2.SOLVEPNP_EPNP)
            if ok:
                rvec, tvec = cv2.solvePnPRefineLM(obj, img, Kn[b], None, rvec, tvec)
        except cv2.error:
            ok = False
        if not ok or not np.isfinite(tvec).all():
            continue
        root[b] = tvec.ravel()
        rot[b] = cv2.Rodrigues(rvec)[0]
        valid[b] = True
    return RootPnP(*_wrap(keypoints, root, rot, valid))
