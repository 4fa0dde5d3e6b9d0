"""Appearance of a synthetic sample: skin, lights, procedural backgrounds, occluders and camera artefacts.

No photo library is available, so backgrounds are procedural (smooth noise, gradients, random shapes,
stripes and checkers, and mixtures of them), including skin-coloured distractors so that a network cannot
learn "skin colour = hand". Everything draws from the sample's own ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SKIN_TONES",
    "AppearanceConfig",
    "Lighting",
    "sample_skin",
    "sample_lighting",
    "random_background",
    "occluder_meshes",
    "sample_occluder",
    "apply_artefacts",
]

#: sRGB albedos (0..1) from light to dark skin; a sample interpolates between neighbours.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.93, 0.74, 0.62], [0.87, 0.67, 0.53], [0.80, 0.58, 0.44],
    [0.69, 0.48, 0.34], [0.56, 0.37, 0.25], [0.42, 0.27, 0.18], [0.30, 0.19, 0.13],
])


@dataclass(frozen=True)
class AppearanceConfig:
    """Probabilities and ranges of the appearance variation.

    Attributes:
        skin_noise: amplitude range of the procedural albedo noise on the skin.
        num_lights: range (inclusive) of directional lights.
        ambient: range of the ambient light intensity.
        occluder_probability: chance of 1-2 objects between the camera and the hand.
        blur_probability, noise_probability, jpeg_probability: camera artefacts (JPEG here means an
            extra lossy round trip at a random quality, on top of the dataset's own encoding).
        blur_sigma, noise_sigma, jpeg_quality: their ranges (pixels, 8-bit levels, quality).
    """

    skin_noise: tuple[float, float] = (0.03, 0.15)
    num_lights: tuple[int, int] = (1, 3)
    ambient: tuple[float, float] = (0.15, 0.5)
    occluder_probability: float = 0.25
    blur_probability: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_probability: float = 0.4
    noise_sigma: tuple[float, float] = (1.0, 6.0)
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 95)


@dataclass
class Lighting:
    """Ambient intensity (RGB) and directional lights; ``directions`` (L,3) point from the scene towards
    each light, camera frame; ``colors`` (L,3) their RGB intensities."""

    ambient: np.ndarray
    directions: np.ndarray
    colors: np.ndarray


def sample_skin(rng: np.random.Generator, config: AppearanceConfig = AppearanceConfig()):
    """(albedo (3,) sRGB 0..1, noise amplitude, noise seed)."""
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    albedo = (1 - (t - i)) * SKIN_TONES[i] + (t - i) * SKIN_TONES[i + 1]
    albedo = np.clip(albedo * rng.uniform(0.92, 1.08) + rng.normal(0, 0.015, 3), 0.05, 1.0)
    return albedo, rng.uniform(*config.skin_noise), float(rng.uniform(0, 100))


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def sample_lighting(rng: np.random.Generator, config: AppearanceConfig = AppearanceConfig()) -> Lighting:
    """Random ambient and directional lights, mostly from the camera's side of the hand."""
    n = int(rng.integers(config.num_lights[0], config.num_lights[1] + 1))
    d = rng.normal(size=(n, 3))
    d[:, 2] = -np.abs(d[:, 2]) - 0.3  # towards the camera (camera looks along +z)
    tint = np.clip(1 + rng.normal(0, 0.08, (n, 3)), 0.7, 1.2)
    colors = tint * rng.uniform(0.4, 1.0, (n, 1)) / math.sqrt(n)
    ambient = rng.uniform(*config.ambient) * np.clip(1 + rng.normal(0, 0.05, 3), 0.85, 1.15)
    return Lighting(ambient=ambient, directions=_unit(d), colors=colors)


# ---- backgrounds -------------------------------------------------------------------------------------

def _color(rng, skin_chance=0.1) -> np.ndarray:
    if rng.random() < skin_chance:
        return (sample_skin(rng)[0] * 255).astype(np.float32)
    return rng.uniform(0, 255, 3).astype(np.float32)


# Each field maker returns a scalar field t in [0, 1] at low resolution; colouring and up-sampling happen
# once, in uint8, which keeps a background near a millisecond.

def _noise(rng, n):
    """Multi-octave value noise."""
    field = np.zeros((n, n), np.float32)
    amp, total = 1.0, 0.0
    for cells in (2, 4, 8, 16, 32)[: int(rng.integers(2, 6))]:
        grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
        field += amp * cv2.resize(grid, (n, n), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= rng.uniform(0.4, 0.7)
    return field / total


def _grid(n):
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    return x / n, y / n


def _gradient(rng, n):
    """Linear or radial ramp."""
    x, y = _grid(n)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        return (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle) + 0.5
    cx, cy = rng.uniform(0, 1, 2)
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) * np.float32(rng.uniform(0.8, 2.0))


def _pattern(rng, n):
    """Stripes (hard or soft) or checkers at a random angle and period."""
    x, y = _grid(n)
    angle = rng.uniform(0, math.pi)
    period = np.float32(rng.uniform(0.03, 0.3))  # fraction of the image side
    u = (x * math.cos(angle) + y * math.sin(angle)) / period
    kind = int(rng.integers(3))
    if kind == 0:
        return np.floor(u) % 2
    if kind == 1:
        v = (-x * math.sin(angle) + y * math.cos(angle)) / period
        return (np.floor(u) + np.floor(v)) % 2
    return 0.5 + 0.5 * np.sin(u * np.float32(2 * math.pi))


def _colorize(rng, t, size) -> np.ndarray:
    a, b = _color(rng), _color(rng)
    low = a + (b - a) * np.clip(t, 0, 1)[..., None]
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR).clip(0, 255).astype(np.uint8)


def _shapes(rng, image):
    size = image.shape[0]
    for _ in range(int(rng.integers(3, 15))):
        color = tuple(float(c) for c in _color(rng, skin_chance=0.2))
        kind = int(rng.integers(4))
        p = rng.integers(-size // 4, size + size // 4, (2,))
        if kind == 0:
            q = p + rng.integers(5, size // 2, (2,))
            cv2.rectangle(image, tuple(int(v) for v in p), tuple(int(v) for v in q), color, -1)
        elif kind == 1:
            cv2.circle(image, tuple(int(v) for v in p), int(rng.integers(4, size // 4)), color, -1)
        elif kind == 2:
            q = rng.integers(0, size, (2,))
            cv2.line(image, tuple(int(v) for v in p), tuple(int(v) for v in q), color, int(rng.integers(1, 12)))
        else:
            pts = (p + rng.integers(-size // 4, size // 4, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(image, [pts], color)
    return image


_FIELDS = (_noise, _gradient, _pattern)


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size,size,3) uint8 RGB procedural background."""
    n = max(size // 2, 8)
    image = _colorize(rng, _FIELDS[int(rng.integers(len(_FIELDS)))](rng, n), size)
    if rng.random() < 0.6:
        image = _shapes(rng, image)
    if rng.random() < 0.3:  # blend a second layer
        second = _colorize(rng, _FIELDS[int(rng.integers(len(_FIELDS)))](rng, n), size)
        w = rng.uniform(0.2, 0.6)
        image = cv2.addWeighted(image, 1 - w, second, w, 0.0)
    if rng.random() < 0.5:  # defocused background
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 3.0))
    return np.ascontiguousarray(image)


# ---- occluders ---------------------------------------------------------------------------------------

_OCCLUDERS = None


def occluder_meshes():
    """Unit-size primitive meshes (vertices (V,3), faces (F,3)) used as occluders: box, cylinder, sphere,
    capsule."""
    global _OCCLUDERS
    if _OCCLUDERS is None:
        import trimesh

        prims = [trimesh.creation.box((1.0, 1.0, 1.0)),
                 trimesh.creation.cylinder(radius=0.5, height=1.0, sections=24),
                 trimesh.creation.icosphere(subdivisions=2, radius=0.5),
                 trimesh.creation.capsule(height=1.0, radius=0.3, count=(12, 12))]
        _OCCLUDERS = [(np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int32)) for m in prims]
    return _OCCLUDERS


def sample_occluder(rng: np.random.Generator, target: np.ndarray, palm_depth: float):
    """An occluder between the camera and a camera-space ``target`` point on the hand.

    Returns ``(vertices (V,3) camera space, faces (F,3), colour (3,) 0..1)``.
    """
    vertices, faces = occluder_meshes()[int(rng.integers(len(occluder_meshes())))]
    scale = rng.uniform(0.02, 0.08, 3)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    depth = max(0.12, palm_depth - rng.uniform(0.04, 0.15))
    centre = target / target[2] * depth + np.append(rng.normal(0, 0.015, 2), 0.0)
    return (vertices * scale) @ R.T + centre, faces, rng.uniform(0.05, 0.95, 3)


# ---- camera artefacts --------------------------------------------------------------------------------

def apply_artefacts(rng: np.random.Generator, image: np.ndarray,
                    config: AppearanceConfig = AppearanceConfig()) -> np.ndarray:
    """Blur, sensor noise and a lossy JPEG round trip, each with its probability. uint8 in and out."""
    out = image
    if rng.random() < config.blur_probability:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*config.blur_sigma))
    if rng.random() < config.noise_probability:
        noise = rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(*config.noise_sigma))
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_probability:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)
