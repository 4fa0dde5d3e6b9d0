"""Product overlays: a shaded mesh over a photo, a side view of a mesh, a 2D skeleton.

All functions are pure (inputs are never modified; a new uint8 (H,W,3) RGB image is returned), check their
inputs (ValueError naming the argument; NaN and inf refused) and follow the OpenCV pixel convention of
:mod:`handrecon.render.renderer` (pixel centres at integer coordinates, row 0 at the top).

>>> out = overlay_mesh(image, pred.vertices, hand.faces, K)
>>> out = draw_keypoints(out, pred.keypoints_2d)
>>> side = side_view(pred.vertices, hand.faces, size=(256, 256), angle_deg=90)
"""

from __future__ import annotations

import threading

import numpy as np

from handrecon.hand.keypoints import FINGER_KEYPOINTS, FINGERS, KEYPOINT_PARENTS, NUM_KEYPOINTS
from handrecon.render.renderer import (
    SKIN,
    Mesh,
    Renderer,
    _as_array,
    _check_float,
    _check_image,
    _check_size,
)

__all__ = ["overlay_mesh", "side_view", "draw_keypoints", "FINGER_COLORS", "WRIST_COLOR"]

# RGB colour of each finger's bones and keypoints (thumb, index, middle, ring, little), and of the wrist.
FINGER_COLORS = {
    "thumb": (230, 60, 60),
    "index": (240, 180, 40),
    "middle": (60, 200, 80),
    "ring": (40, 150, 240),
    "little": (180, 80, 220),
}
WRIST_COLOR = (235, 235, 235)

_DEFAULT = threading.local()  # .renderer: the Renderer used when none is passed (one per thread)


def _default_renderer() -> Renderer:
    r = getattr(_DEFAULT, "renderer", None)
    if r is None:
        r = _DEFAULT.renderer = Renderer(256, 256, samples=4, shading="pixel")
    return r


def _check_color(color, name="color"):
    c = _check_float(color, name, (3,), np.float64)
    if c.min() < 0 or c.max() > 1:
        raise ValueError(f"{name} must be an RGB albedo in 0..1, got {c.tolist()}")
    return c


def _check_renderer(renderer):
    if renderer is None:
        return _default_renderer()
    if not isinstance(renderer, Renderer):
        raise ValueError(f"renderer must be a handrecon.render.Renderer or None, got {type(renderer).__name__}")
    return renderer


def overlay_mesh(image, vertices, faces, K, color=SKIN, alpha: float = 0.6, renderer: Renderer | None = None,
                 lights=None) -> np.ndarray:
    """``image`` (H,W,3) uint8 RGB with the shaded mesh blended over it: ``alpha * shaded + (1-alpha) * photo``
    where the mesh covers the pixel (anti-aliased at its edges when the renderer multisamples); pixels away
    from the mesh are returned unchanged.

    vertices: (V,3) camera-space metres (numpy or torch), faces: (F,3) int, K: (3,3) intrinsics of ``image``.
    color: RGB albedo in 0..1. alpha: opacity in [0,1]. renderer: a :class:`Renderer` to reuse (default: a
    per-process one with 4x MSAA and per-pixel shading). lights: as :meth:`Renderer.render`.
    """
    image = _check_image(image, "image")
    color = _check_color(color)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in [0,1], got {alpha!r}") from None
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0,1], got {alpha}")
    renderer = _check_renderer(renderer)
    mesh = Mesh(vertices, faces, color=color, specular=0.15, shininess=24.0)
    shaded = renderer.render(mesh, K, background=image, lights=lights, ids=False, depth=False).rgb
    # Outside the mesh ``shaded`` is the photo itself, so the blend leaves those pixels exactly as they were.
    changed = np.any(shaded != image, axis=2)
    out = image.copy()
    a = shaded[changed].astype(np.float32)
    b = image[changed].astype(np.float32)
    out[changed] = np.clip(np.rint(b + alpha * (a - b)), 0, 255).astype(np.uint8)
    return out


def side_view(vertices, faces, size=(256, 256), angle_deg: float = 90.0, color=SKIN, background=(255, 255, 255),
              margin: float = 0.08, renderer: Renderer | None = None, lights=None) -> np.ndarray:
    """(H,W,3) uint8 image of the mesh turned by ``angle_deg`` about the vertical axis through its centre and
    framed by a virtual camera, for showing depth that the input view hides.

    The mesh (V,3 camera-space metres) is rotated about the camera's y axis through the centre of its
    bounding box, by the right-hand rule about +y (down): ``angle_deg=90`` brings the mesh's +x side (its
    right in the image) to face the camera, i.e. the view of an observer standing to the right of the
    original camera; 0 re-frames the original view. The virtual camera looks down +z with a field of view
    of about 53 degrees (focal length near ``max(W,H)`` pixels), and K is then adjusted so that the mesh is
    centred and fills the image up to ``margin`` (a fraction of the half-size) on the tighter side.
    size: (width, height) or one int. color: albedo 0..1. background: RGB 0..255 or None (black).
    """
    v = _check_float(vertices, "vertices", (None, 3), np.float64)
    if len(v) == 0:
        raise ValueError("vertices must hold at least one vertex")
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    w, h = _check_size(size)
    try:
        angle = float(angle_deg)
    except (TypeError, ValueError):
        raise ValueError(f"angle_deg must be a number, got {angle_deg!r}") from None
    if not np.isfinite(angle):
        raise ValueError(f"angle_deg must be finite, got {angle}")
    try:
        margin = float(margin)
    except (TypeError, ValueError):
        raise ValueError(f"margin must be a number in [0,1), got {margin!r}") from None
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0,1), got {margin}")
    color = _check_color(color)
    renderer = _check_renderer(renderer)

    t = np.radians(angle)
    c, s = np.cos(t), np.sin(t)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    centre = (v.max(0) + v.min(0)) / 2
    p = (v - centre) @ R.T
    p[:, :2] -= (p[:, :2].max(0) + p[:, :2].min(0)) / 2  # the turned mesh's box centred on the optical axis
    f = float(max(w, h))
    half = np.array([(w - 1) / 2, (h - 1) / 2]) * (1.0 - margin)
    half = np.maximum(half, 0.5)
    # distance d such that f * |x| / (d + z) <= half_x and likewise for y, for every vertex
    need = np.max(f * np.abs(p[:, :2]) / half - p[:, 2:3])
    extent = float(np.ptp(p, axis=0).max()) or 1.0
    d = max(need, -p[:, 2].min() + 0.05 * extent, 1e-3)
    p[:, 2] += d
    # exact framing: scale the focal length so that the projected box fills the tighter side, and move the
    # principal point so that it is centred (perspective makes the projected box slightly off-centre)
    uv = f * p[:, :2] / p[:, 2:3]
    lo, hi = uv.min(0), uv.max(0)
    span = np.maximum(hi - lo, 1e-9)
    s = float(np.min(2 * half / span))
    cx, cy = np.array([(w - 1) / 2, (h - 1) / 2]) - s * (lo + hi) / 2
    K = np.array([[f * s, 0.0, cx], [0.0, f * s, cy], [0.0, 0.0, 1.0]])
    zfar = float(p[:, 2].max()) * 2 + 1.0
    znear = max(float(p[:, 2].min()) * 0.5, 1e-4)
    mesh = Mesh(p.astype(np.float32), faces, color=color, specular=0.15, shininess=24.0)
    return renderer.render(mesh, K, size=(w, h), background=background, lights=lights, znear=znear, zfar=zfar,
                           ids=False, depth=False).rgb


def _keypoint_colors(n):
    if n != NUM_KEYPOINTS:
        return [(0, 220, 0)] * n
    colors = [WRIST_COLOR] * n
    for finger in FINGERS:
        for k in FINGER_KEYPOINTS[finger]:
            colors[k] = FINGER_COLORS[finger]
    return colors


def draw_keypoints(image, keypoints_2d, parents=KEYPOINT_PARENTS, colors=None, visible=None,
                   radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """Copy of ``image`` (H,W,3 uint8 RGB) with the skeleton drawn with OpenCV (anti-aliased, sub-pixel).

    keypoints_2d: (N,2) pixel coordinates (u, v), OpenCV convention. parents: (N,) parent index of each
    keypoint, -1 for roots (default: FreiHAND's 21-keypoint hand, :data:`KEYPOINT_PARENTS`). colors: (N,3)
    RGB 0..255 per keypoint (a bone takes its child's colour); default: one colour per finger
    (:data:`FINGER_COLORS`) for 21 keypoints, green otherwise. visible: optional (N,) bool; hidden keypoints
    and their bones are not drawn. radius, thickness: pixels (default from the image size).
    """
    import cv2

    image = _check_image(image, "image")
    kp = _check_float(keypoints_2d, "keypoints_2d", (None, 2), np.float64)
    n = len(kp)
    par = _as_array(parents, "parents")
    if par.shape != (n,) or (n and par.dtype.kind not in "iu"):
        raise ValueError(f"parents must be ({n},) integer indices matching keypoints_2d, got shape {par.shape}")
    if n and (par.min() < -1 or par.max() >= n or np.any(par == np.arange(n))):
        raise ValueError("parents must hold -1 or the index of another keypoint")
    if colors is None:
        cols = _keypoint_colors(n)
    else:
        c = _check_float(colors, "colors", (n, 3), np.float64)
        if c.min() < 0 or c.max() > 255:
            raise ValueError("colors must be RGB values in 0..255")
        cols = [tuple(float(x) for x in row) for row in c]
    if visible is None:
        vis = np.ones(n, bool)
    else:
        vis = _as_array(visible, "visible")
        if vis.shape != (n,):
            raise ValueError(f"visible must have shape ({n},), got {vis.shape}")
        vis = vis.astype(bool)
    h, w = image.shape[:2]
    scale = min(h, w)
    if radius is None:
        radius = max(1, int(round(scale / 100)))
    if thickness is None:
        thickness = max(1, int(round(scale / 160)))
    for name, val in (("radius", radius), ("thickness", thickness)):
        if not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")

    shift = 4  # sub-pixel: coordinates in 1/16 px
    limit = 4.0 * max(h, w) + 1e4  # far-away points are clipped (keeps int32 fixed point in range)
    pts = np.rint(np.clip(kp, -limit, limit) * (1 << shift)).astype(np.int64)
    out = np.ascontiguousarray(image.copy())
    for k in range(n):
        p = int(par[k])
        if p >= 0 and vis[k] and vis[p]:
            cv2.line(out, tuple(int(x) for x in pts[p]), tuple(int(x) for x in pts[k]), cols[k],
                     int(thickness), cv2.LINE_AA, shift)
    for k in range(n):
        if vis[k]:
            cv2.circle(out, tuple(int(x) for x in pts[k]), int(radius) << shift, cols[k], -1, cv2.LINE_AA, shift)
    return out
