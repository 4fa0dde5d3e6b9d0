"""Camera placement: MobRecon's 216 hemispherical viewpoints plus the variation of real photos.

The 216 viewpoints are 36 longitudes x 6 latitudes (steps pi/18 and pi/12) on a hemisphere centred at the
hand, pointing at the palm centre (MobRecon, supplementary Figure 12). On our hand the hemisphere's pole
points from the palm along the forearm (model +x, fingers point -x), so latitude 0 circles the hand (palm,
back and both sides) and high latitudes look along the arm, as in first-person views.

Each sampled view is jittered inside its cell, then given what real photos have: a random in-plane roll,
a focal length (a horizontal field of view of 40-75 degrees), a distance (the palm 0.3-0.9 m away, within
that range where the hand fills 25-90% of the image side) and an off-centre placement, so that the camera-space root varies
as it does in real images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handrecon.camera import intrinsics_from_fov, project_points

__all__ = ["NUM_LONGITUDES", "NUM_LATITUDES", "NUM_VIEWS", "ViewConfig", "CameraPlacement",
           "view_direction", "look_at", "palm_centre", "place_camera"]

NUM_LONGITUDES, NUM_LATITUDES = 36, 6
NUM_VIEWS = NUM_LONGITUDES * NUM_LATITUDES
LONGITUDE_STEP, LATITUDE_STEP = math.pi / 18, math.pi / 12

# Model frame of the open hand (and MANO): fingers -x, back of the hand +y, thumb side +z.
_POLE, _BACK, _THUMB = np.eye(3)


@dataclass(frozen=True)
class ViewConfig:
    """Ranges of the camera variation (uniform unless said otherwise).

    Attributes:
        fov_deg: horizontal field of view, degrees.
        distance: distance from the camera to the palm centre, metres.
        hand_fraction: allowed range of the longer side of the hand's projected box as a fraction of the
            image side; the distance is drawn from the part of ``distance`` that gives it (so wide fields
            of view bring the hand closer).
        roll: in-plane rotation about the optical axis, radians.
        margin: the hand's box stays this fraction of the image side inside the border.
        jitter_in_cell: spread each of the 216 viewpoints over its longitude/latitude cell.
    """

    fov_deg: tuple[float, float] = (40.0, 75.0)
    distance: tuple[float, float] = (0.3, 0.9)
    hand_fraction: tuple[float, float] = (0.25, 0.9)
    roll: tuple[float, float] = (-math.pi, math.pi)
    margin: float = 0.03
    jitter_in_cell: bool = True


@dataclass
class CameraPlacement:
    """Where a sampled camera is. ``p_camera = R @ (p_model - keypoint_0) + root``.

    Attributes:
        R: (3,3) rotation from the model frame to the camera frame (OpenCV axes).
        root: (3,) camera-space position of the wrist keypoint, metres.
        K: (3,3) intrinsics.
        view: index of the hemispherical viewpoint, ``latitude * 36 + longitude`` (0..215).
    """

    R: np.ndarray
    root: np.ndarray
    K: np.ndarray
    view: int


def view_direction(longitude: float, latitude: float) -> np.ndarray:
    """Unit vector from the palm centre towards the camera, in the model frame."""
    c = math.cos(latitude)
    return c * (math.cos(longitude) * _BACK + math.sin(longitude) * _THUMB) + math.sin(latitude) * _POLE


def look_at(direction: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """(3,3) rotation, model -> camera, for a camera on ``direction`` looking back at the origin, with the
    image's up (-y) as close to ``up_hint`` as possible."""
    z = -np.asarray(direction, dtype=np.float64)
    z /= np.linalg.norm(z)
    down = -np.asarray(up_hint, dtype=np.float64)
    if abs(float(down @ z)) > 0.99:  # looking along the hint: any perpendicular will do
        down = _BACK if abs(float(_BACK @ z)) < 0.9 else _THUMB
    y = down - z * float(down @ z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return np.stack([x, y, z])


def palm_centre(keypoints: np.ndarray) -> np.ndarray:
    """Mean of the wrist and the four finger MCP keypoints, (...,21,3) -> (...,3)."""
    return np.asarray(keypoints)[..., [0, 5, 9, 13, 17], :].mean(-2)


def _rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _angular_extent(rel: np.ndarray, distance: float) -> float:
    """Longer side of the hand's box on the image plane at unit focal length (tan units)."""
    xy = rel[:, :2] / (rel[:, 2:3] + distance)
    return float((xy.max(0) - xy.min(0)).max())


def place_camera(rng: np.random.Generator, vertices: np.ndarray, keypoints: np.ndarray, size: int,
                 config: ViewConfig = ViewConfig()) -> CameraPlacement:
    """Sample a camera for a posed hand.

    Args:
        rng: the sample's generator.
        vertices: (V,3) posed hand in the model frame (global rotation zero).
        keypoints: (21,3) its keypoints.
        size: square image side in pixels.
        config: ranges.
    """
    lon_i, lat_i = int(rng.integers(NUM_LONGITUDES)), int(rng.integers(NUM_LATITUDES))
    lon, lat = lon_i * LONGITUDE_STEP, lat_i * LATITUDE_STEP
    if config.jitter_in_cell:
        lon += rng.uniform(-0.5, 0.5) * LONGITUDE_STEP
        lat += rng.uniform(0.0, 1.0) * LATITUDE_STEP
    direction = view_direction(lon, lat)
    R = _rotation_z(rng.uniform(*config.roll)) @ look_at(direction, up_hint=-_POLE)

    centre = palm_centre(keypoints)
    rel = (vertices - centre) @ R.T  # camera-oriented, palm centre at the origin

    # Field of view first, then a distance in range at which the hand fills a sensible part of the image.
    K = intrinsics_from_fov(rng.uniform(*config.fov_deg), size)
    nominal = 0.6
    metric_span = _angular_extent(rel, nominal) * nominal  # hand's box at unit distance, roughly
    lo_fraction, hi_fraction = config.hand_fraction
    near = max(config.distance[0], K[0, 0] * metric_span / (hi_fraction * size))
    far = min(config.distance[1], K[0, 0] * metric_span / (lo_fraction * size))
    if near > far:  # both ranges cannot hold: keep the distance range, as near the wanted size as it allows
        near = far = config.distance[1] if near > config.distance[1] else config.distance[0]
    distance = float(rng.uniform(near, far))

    # Off-centre: shift the hand parallel to the image plane so its box lands uniformly inside the image.
    uv = project_points(rel + [0.0, 0.0, distance], K)
    lo, hi = uv.min(0), uv.max(0)
    border = config.margin * size
    low, high = border - lo, size - 1 - border - hi
    shift_px = np.where(low <= high, low + rng.uniform(size=2) * (high - low), (low + high) / 2)
    shift = np.array([shift_px[0] / K[0, 0], shift_px[1] / K[1, 1], 0.0]) * distance
    # Parts nearer than the palm move further in the image: nudge until the box is inside the margin.
    for _ in range(8):
        uv = project_points(rel + shift + [0.0, 0.0, distance], K)
        lo, hi = uv.min(0), uv.max(0)
        fix = np.maximum(border - lo, 0.0) + np.minimum(size - 1 - border - hi, 0.0)
        if np.all(np.abs(fix) < 0.5):
            break
        shift[:2] += fix / np.diag(K)[:2] * distance * 0.8
    palm_cam = np.array([0.0, 0.0, distance]) + shift
    root = R @ (keypoints[0] - centre) + palm_cam
    return CameraPlacement(R=R, root=root, K=K, view=lat_i * NUM_LONGITUDES + lon_i)
