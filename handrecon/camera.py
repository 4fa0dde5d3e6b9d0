"""Pinhole camera maths: projection, intrinsics, crops, in-plane rotations and mirroring.

Conventions (see DESIGN.md): OpenCV camera frame (x right, y down, z forward), metres for 3D, pixels for
2D, pixel ``i`` centred at coordinate ``i`` (as ``cv2.warpAffine`` and ``cv2.projectPoints``). ``K`` is
3x3. A crop or resize of an image is a change of ``K``; an in-plane rotation of the image is a rotation of
the 3D data about the camera's z axis (plus a change of ``K``), so that image, ``K`` and 3D labels always
re-project onto each other.

All functions take numpy arrays or torch tensors with leading batch dimensions and return the same kind.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "check_intrinsics",
    "project_points",
    "unproject_points",
    "intrinsics_from_fov",
    "crop_affine",
    "apply_affine",
    "invert_affine",
    "rotation_about_z",
    "transform_intrinsics",
    "mirror_intrinsics",
    "mirror_points",
    "bbox_from_points",
    "bbox_from_mask",
    "uncrop_map",
]


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else np


def _finite(x, name):
    ok = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not ok:
        raise ValueError(f"{name} contains NaN or inf")


def check_intrinsics(K, name: str = "K"):
    """Raise ValueError unless ``K`` is (...,3,3), finite, with positive focal lengths and last row (0,0,1)."""
    if not isinstance(K, torch.Tensor):
        K = np.asarray(K, dtype=np.float64)
    if K.ndim < 2 or tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {tuple(K.shape)}")
    _finite(K, name)
    if not bool((K[..., 0, 0] > 0).all()) or not bool((K[..., 1, 1] > 0).all()):
        raise ValueError(f"{name} must have positive focal lengths K[0,0] and K[1,1]")
    last = K[..., 2, :]
    if bool((abs(last[..., 0]) > 1e-9).any()) or bool((abs(last[..., 1]) > 1e-9).any()) \
            or bool((abs(last[..., 2] - 1) > 1e-6).any()):
        raise ValueError(f"{name} must have last row (0, 0, 1), got {last}")
    return K


def _check_points(x, name, dim):
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., N, {dim}), got {tuple(x.shape)}")
    _finite(x, name)
    return x


def project_points(points, K, eps: float = 1e-9):
    """Project camera-space points to pixels.

    Args:
        points: (..., N, 3) metres, camera frame; z must be positive.
        K: (..., 3, 3) intrinsics.

    Returns:
        (..., N, 2) pixel coordinates ``u = (K p)_xy / (K p)_z``.
    """
    points = _check_points(points, "points", 3)
    K = check_intrinsics(K)
    if bool((points[..., 2] <= eps).any()):
        raise ValueError("points must lie in front of the camera (z > 0)")
    uvw = points @ K.swapaxes(-1, -2) if _lib(K) is np else points @ K.transpose(-1, -2)
    return uvw[..., :2] / uvw[..., 2:3]


def unproject_points(uv, depth, K):
    """Pixels (..., N, 2) and depths z (..., N) in metres -> camera-space points (..., N, 3)."""
    uv = _check_points(uv, "uv", 2)
    K = check_intrinsics(K)
    lib = _lib(uv)
    ones = lib.ones_like(uv[..., :1])
    homog = lib.concatenate([uv, ones], -1) if lib is np else torch.cat([uv, ones], -1)
    Kinv = lib.linalg.inv(K)
    rays = homog @ (Kinv.swapaxes(-1, -2) if lib is np else Kinv.transpose(-1, -2))
    return rays / rays[..., 2:3] * depth[..., None]


def intrinsics_from_fov(fov_deg: float, width: int, height: int | None = None, center=None) -> np.ndarray:
    """(3,3) K with square pixels whose horizontal field of view is ``fov_deg`` across ``width`` pixels.

    The principal point defaults to the image centre ``((width-1)/2, (height-1)/2)``.
    """
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    height = width if height is None else height
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    cx, cy = ((width - 1) / 2, (height - 1) / 2) if center is None else center
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


def crop_affine(center, size, output_size: int, rotation: float = 0.0) -> np.ndarray:
    """(2,3) affine from source pixels to an ``output_size`` square crop.

    The crop is a square of side ``size`` pixels centred at ``center`` (x, y), rotated by ``rotation``
    radians (positive turns the image content counter-clockwise on screen), scaled to ``output_size``.
    Use it with ``cv2.warpAffine(image, A, (output_size, output_size))``.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    cx, cy = float(center[0]), float(center[1])
    s = output_size / float(size)
    c, si = math.cos(rotation), math.sin(rotation)
    # Screen rotation by +theta with y down: [x', y'] = [c x + s y, -s x + c y] (counter-clockwise on screen).
    R = np.array([[c, si], [-si, c]]) * s
    half = (output_size - 1) / 2
    t = np.array([half, half]) - R @ np.array([cx, cy])
    return np.concatenate([R, t[:, None]], axis=1)


def apply_affine(points, affine):
    """Apply (..., 2, 3) affines to (..., N, 2) points."""
    points = _check_points(points, "points", 2)
    lib = _lib(points)
    A = affine if lib is torch else np.asarray(affine, dtype=np.float64)
    lin = A[..., :2]
    return points @ (lin.transpose(-1, -2) if lib is torch else lin.swapaxes(-1, -2)) + A[..., None, :, 2]


def invert_affine(affine):
    """Inverse of (..., 2, 3) affine maps."""
    A = np.asarray(affine, dtype=np.float64)
    full = np.zeros(A.shape[:-2] + (3, 3))
    full[..., :2, :] = A
    full[..., 2, 2] = 1.0
    return np.linalg.inv(full)[..., :2, :]


def rotation_about_z(angle) -> np.ndarray:
    """(3,3) rotation of camera-space points about the optical axis by ``angle`` radians.

    It moves projected points the way :func:`crop_affine`'s ``rotation`` moves image content (about the
    principal point).
    """
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def transform_intrinsics(K, affine):
    """New intrinsics and 3D rotation after warping an image by a similarity ``affine`` (2,3).

    Returns ``(K_new, R)``: rotate 3D labels by ``R`` (``p' = R p``) and project with ``K_new`` to land
    exactly where ``affine`` moved the pixels. ``R`` is the rotation about the camera's z axis contained in
    the affine; ``K_new = A K R^T``. With square pixels (fx == fy) ``K_new`` is again a zero-skew pinhole.
    """
    K = check_intrinsics(np.asarray(K, dtype=np.float64))
    A = np.asarray(affine, dtype=np.float64)
    if A.shape != (2, 3):
        raise ValueError(f"affine must have shape (2, 3), got {A.shape}")
    lin = A[:, :2]
    scale = math.sqrt(abs(np.linalg.det(lin)))
    if scale <= 0 or not np.allclose(lin / scale @ (lin / scale).T, np.eye(2), atol=1e-6) or np.linalg.det(lin) < 0:
        raise ValueError("affine must be a similarity (rotation, uniform scale, translation) without reflection")
    angle = math.atan2(lin[0, 1], lin[0, 0])
    R = rotation_about_z(angle)
    full = np.eye(3)
    full[:2] = A
    K_new = full @ K @ R.T
    K_new[np.abs(K_new) < 1e-12] = 0.0
    return K_new, R


def mirror_intrinsics(K, width: int):
    """Intrinsics after flipping an image of ``width`` pixels left-right (``u' = width - 1 - u``), for
    points mirrored with :func:`mirror_points`."""
    K = check_intrinsics(K)
    out = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    out[..., 0, 2] = width - 1 - K[..., 0, 2]
    out[..., 0, 1] = -K[..., 0, 1]
    return out


def mirror_points(points):
    """Mirror camera-space points (..., N, 3) across the camera's y-z plane (x -> -x): right <-> left hand."""
    points = _check_points(points, "points", 3)
    out = points.clone() if isinstance(points, torch.Tensor) else np.array(points, dtype=np.float64)
    out[..., 0] = -out[..., 0]
    return out


def bbox_from_points(uv, expand: float = 1.0, square: bool = True) -> np.ndarray:
    """(x0, y0, x1, y1) box around 2D points (N, 2), grown about its centre by ``expand``; square uses the
    longer side."""
    uv = np.asarray(_check_points(uv, "uv", 2), dtype=np.float64).reshape(-1, 2)
    if len(uv) == 0:
        raise ValueError("uv must hold at least one point")
    lo, hi = uv.min(0), uv.max(0)
    c, half = (lo + hi) / 2, (hi - lo) / 2 * expand
    if square:
        half = np.full(2, half.max())
    return np.concatenate([c - half, c + half])


def bbox_from_mask(mask, expand: float = 1.0, square: bool = True) -> np.ndarray | None:
    """Box around the nonzero pixels of a (H, W) mask (see :func:`bbox_from_points`); None if empty."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {m.shape}")
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return None
    return bbox_from_points(np.stack([xs, ys], 1).astype(np.float64), expand, square)


def uncrop_map(values: np.ndarray, affine: np.ndarray, crop_size: int, image_size) -> np.ndarray:
    """A map predicted over a crop, back in source-image pixels.

    ``values`` (s,s) covers the whole ``crop_size`` crop (e.g. a silhouette at half resolution); ``affine``
    (2,3) maps source pixels to crop pixels (:func:`crop_affine`). Returns (H,W) float32, bilinear, 0 outside
    the crop, for ``image_size`` = (H, W).
    """
    import cv2

    s = values.shape[-1]
    k = s / crop_size  # crop pixel u -> map pixel (u + 0.5) k - 0.5
    to_map = np.array([[k, 0.0, 0.5 * k - 0.5], [0.0, k, 0.5 * k - 0.5], [0.0, 0.0, 1.0]])
    full = to_map @ np.vstack([affine, [0.0, 0.0, 1.0]])  # source px -> map px
    H, W = int(image_size[0]), int(image_size[1])
    return cv2.warpAffine(np.asarray(values, np.float32), full[:2], (W, H),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)
