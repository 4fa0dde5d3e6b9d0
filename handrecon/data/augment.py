"""Crops, in-plane rotations and colour jitter of common-format samples, keeping image, ``K`` and labels
consistent.

A crop (with scale and in-plane rotation) is one similarity ``A`` (2,3) from source pixels to crop pixels
(:func:`handrecon.camera.crop_affine`). The image is warped with ``A`` (bilinear), the mask with ``A``
(nearest), ``keypoints_2d`` and ``bbox`` are mapped by ``A``, and the camera changes as
:func:`handrecon.camera.transform_intrinsics` says: ``K' = A K R^T`` and every 3D label (``keypoints``,
``vertices``, ``root``, the global rotation in ``pose``) is rotated by ``R`` about the optical axis. So
``project(R p, K') == A(project(p, K))`` exactly: the augmented sample is again a valid sample of a (virtual)
camera, and root-relative 3D only sees the rotation ``R``.

Training crops (:class:`Augmentation`, CMR/MobRecon style): a square box around the hand (the box of
``keypoints_2d`` when labelled, else of the mask, else the dataset's ``bbox``, else the whole image), its side
the longer side of that box times ``scale`` drawn uniformly from ``scale +- scale_jitter`` (1.3 +- 0.2), its
centre shifted by ``shift`` (0.1) times the box side uniformly along each axis, rotated by an angle drawn
uniformly from +-``rotation`` degrees (90), resampled to ``output_size`` pixels. Colour jitter (brightness,
contrast, saturation, hue, in random order, as torchvision's ``ColorJitter``) and an optional Gaussian blur
change the image only.

Evaluation crops (no randomness, :func:`eval_crop`): with ``eval_crop="auto"`` a square image without a
dataset ``bbox`` (FreiHAND's 224x224 crops) is used whole, resized to ``output_size``; otherwise the square
box around the dataset's ``bbox`` (HO3D evaluation, RHD), else ``keypoints_2d``, else the mask, grown by
``eval_scale`` (default: ``scale``) is cropped. ``"full"`` and ``"box"`` force one or the other.

Everything random draws from a ``numpy.random.Generator`` passed in, so results are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from handrecon.camera import apply_affine, crop_affine, invert_affine, transform_intrinsics
from handrecon.data._posing import axis_angle_compose
from handrecon.data.sample import validate_sample

__all__ = [
    "Augmentation",
    "View",
    "hand_box",
    "random_crop",
    "eval_crop",
    "crop_sample",
    "color_jitter",
    "augment_sample",
    "two_view",
    "relative_transform",
]

_MIN_BOX = 8.0  # pixels: the smallest hand box a crop is built around


@dataclass(frozen=True)
class Augmentation:
    """Augmentation settings (defaults follow CMR/MobRecon: box scale 1.3 +- 0.2, rotation +-90 degrees).

    Attributes:
        output_size: side of the square crop, pixels (224 for CMR, 128 for MobRecon).
        scale, scale_jitter: crop side = longer side of the hand box x U(scale - jitter, scale + jitter).
        shift: crop centre moves by U(-shift, shift) x box side along x and y.
        rotation: in-plane rotation drawn from U(-rotation, rotation), degrees.
        brightness, contrast, saturation: factors drawn from U(1 - v, 1 + v) (0 disables).
        hue: hue shift drawn from U(-hue, hue), fraction of the colour circle (0 disables; at most 0.5).
        blur_probability, blur_sigma: chance of a Gaussian blur and its sigma range, pixels of the crop.
        eval_crop: ``"auto"``, ``"full"`` or ``"box"`` (see the module docstring).
        eval_scale: box growth for evaluation crops; None = ``scale``.
    """

    output_size: int = 128
    scale: float = 1.3
    scale_jitter: float = 0.2
    shift: float = 0.1
    rotation: float = 90.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05
    blur_probability: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    eval_crop: str = "auto"
    eval_scale: float | None = None

    def __post_init__(self):
        if int(self.output_size) < 8:
            raise ValueError(f"output_size must be at least 8 pixels, got {self.output_size}")
        if not self.scale > 0 or not 0 <= self.scale_jitter < self.scale:
            raise ValueError(f"need scale > 0 and 0 <= scale_jitter < scale, got {self.scale}, {self.scale_jitter}")
        for name in ("shift", "rotation", "brightness", "contrast", "saturation", "hue", "blur_probability"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.brightness > 1 or self.contrast > 1 or self.saturation > 1 or self.hue > 0.5:
            raise ValueError("brightness, contrast and saturation must be <= 1 and hue <= 0.5")
        if self.blur_probability > 1 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"need blur_probability <= 1 and 0 < blur_sigma[0] <= blur_sigma[1], got "
                             f"{self.blur_probability}, {self.blur_sigma}")
        if self.eval_crop not in ("auto", "full", "box"):
            raise ValueError(f"eval_crop must be 'auto', 'full' or 'box', got {self.eval_crop!r}")
        if self.eval_scale is not None and not self.eval_scale > 0:
            raise ValueError(f"eval_scale must be positive, got {self.eval_scale}")


class View(NamedTuple):
    """An augmented sample with the source-to-crop pixel affine (2,3) and the 3D rotation (3,3) applied."""

    sample: dict
    affine: np.ndarray
    rotation: np.ndarray


def _square(box) -> tuple[np.ndarray, float]:
    box = np.asarray(box, np.float64)
    center = (box[:2] + box[2:]) / 2
    return center, max(float((box[2:] - box[:2]).max()), _MIN_BOX)


def hand_box(sample: dict, order=("keypoints_2d", "mask", "bbox")) -> tuple[np.ndarray, float]:
    """(centre (2,), side) of the square box around the hand, from the first labelled source in ``order``
    (``"keypoints_2d"``, ``"mask"``, ``"bbox"``); the whole image when none is labelled."""
    for source in order:
        if source == "keypoints_2d" and sample["has_keypoints_2d"]:
            uv = sample["keypoints_2d"].astype(np.float64)
            return _square(np.concatenate([uv.min(0), uv.max(0)]))
        if source == "mask" and sample["has_mask"] and sample["mask"].any():
            ys, xs = np.nonzero(sample["mask"])
            return _square([xs.min(), ys.min(), xs.max(), ys.max()])
        if source == "bbox" and sample["has_bbox"]:
            return _square(sample["bbox"])
    H, W = sample["image"].shape[:2]
    return np.array([(W - 1) / 2, (H - 1) / 2]), float(max(H, W))


def random_crop(sample: dict, config: Augmentation, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """Training crop (centre (2,), side in source pixels, rotation in radians); draws 4 numbers from ``rng``."""
    center, side = hand_box(sample, ("keypoints_2d", "mask", "bbox"))
    s = rng.uniform(config.scale - config.scale_jitter, config.scale + config.scale_jitter)
    shift = rng.uniform(-config.shift, config.shift, size=2) * side
    angle = math.radians(rng.uniform(-config.rotation, config.rotation))
    return center + shift, side * s, angle


def eval_crop(sample: dict, config: Augmentation) -> tuple[np.ndarray, float, float]:
    """Deterministic evaluation crop (centre, side, rotation 0); see the module docstring."""
    H, W = sample["image"].shape[:2]
    full = config.eval_crop == "full" or (config.eval_crop == "auto" and H == W and not sample["has_bbox"])
    if full:
        return np.array([(W - 1) / 2, (H - 1) / 2]), float(max(H, W)), 0.0
    center, side = hand_box(sample, ("bbox", "keypoints_2d", "mask"))
    return center, side * (config.scale if config.eval_scale is None else config.eval_scale), 0.0


def crop_sample(sample: dict, center, size: float, output_size: int, rotation: float = 0.0) -> View:
    """Crop a square of side ``size`` source pixels centred at ``center``, rotated by ``rotation`` radians
    (counter-clockwise on screen), to ``output_size`` pixels; update ``K`` and every label consistently."""
    S = int(output_size)
    A = crop_affine(center, size, S, rotation)
    K_new, R = transform_intrinsics(sample["K"].astype(np.float64), A)
    image = sample["image"]
    factor = size / S
    if factor > 1.5:  # anti-alias a strong downscale
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * math.sqrt(factor * factor - 1))
    out = dict(sample)
    out["image"] = cv2.warpAffine(image, A, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=(0, 0, 0))
    out["mask"] = cv2.warpAffine(sample["mask"], A, (S, S), flags=cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out["K"] = K_new.astype(np.float32)
    for key, flag in (("keypoints", "has_keypoints_3d"), ("vertices", "has_vertices"), ("root", "has_root")):
        if sample[flag]:
            out[key] = (sample[key].astype(np.float64) @ R.T).astype(np.float32)
    if sample["has_keypoints_2d"]:
        out["keypoints_2d"] = apply_affine(sample["keypoints_2d"].astype(np.float64), A).astype(np.float32)
    if sample["has_bbox"]:
        x0, y0, x1, y1 = sample["bbox"].astype(np.float64)
        corners = apply_affine(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), A)
        out["bbox"] = np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32)
    if sample["has_pose"]:
        pose = sample["pose"].astype(np.float64).copy()
        pose[0] = axis_angle_compose(R, pose[0])
        out["pose"] = pose.astype(np.float32)
    return View(validate_sample(out, "crop_sample: "), A, R)


def color_jitter(image: np.ndarray, config: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter in random order, then an optional Gaussian blur.
    uint8 (H,W,3) RGB in and out; always draws the same count of numbers from ``rng``."""
    b, c, s = (rng.uniform(1 - v, 1 + v) for v in (config.brightness, config.contrast, config.saturation))
    h = rng.uniform(-config.hue, config.hue)
    order = rng.permutation(4)
    blur = rng.random() < config.blur_probability
    sigma = rng.uniform(*config.blur_sigma)
    img = image.astype(np.float32)

    def gray(x):
        return x @ np.array([0.299, 0.587, 0.114], np.float32)

    for op in order:
        if op == 0 and config.brightness:
            img = img * b
        elif op == 1 and config.contrast:
            m = float(gray(img).mean())
            img = (img - m) * c + m
        elif op == 2 and config.saturation:
            g = gray(img)[..., None]
            img = (img - g) * s + g
        elif op == 3 and config.hue:
            hsv = cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = np.mod(hsv[..., 0] + h * 360.0, 360.0)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
        img = np.clip(img, 0, 255)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def augment_sample(sample: dict, config: Augmentation, rng: np.random.Generator | None = None) -> View:
    """A random training view (crop, rotation, colour) when ``rng`` is given; the evaluation crop when
    ``rng`` is None."""
    if rng is None:
        center, size, angle = eval_crop(sample, config)
        return crop_sample(sample, center, size, config.output_size, angle)
    center, size, angle = random_crop(sample, config, rng)
    view = crop_sample(sample, center, size, config.output_size, angle)
    view.sample["image"] = color_jitter(view.sample["image"], config, rng)
    return view


def relative_transform(view1: View, view2: View) -> tuple[np.ndarray, np.ndarray]:
    """(2,3) affine taking view-1 crop pixels to view-2 crop pixels, and (3,3) rotation with
    ``view2 3D = R_rel @ view1 3D`` (root-relative or camera-space alike)."""
    inv1 = np.vstack([invert_affine(view1.affine), [0.0, 0.0, 1.0]])
    affine = (np.vstack([view2.affine, [0.0, 0.0, 1.0]]) @ inv1)[:2]
    return affine, view2.rotation @ view1.rotation.T


def two_view(sample: dict, config: Augmentation, rng: np.random.Generator) -> tuple[View, View, np.ndarray, np.ndarray]:
    """Two independent training views of one sample (MobRecon's consistency learning) and their relative
    transforms: ``(view1, view2, affine_rel (2,3), rotation_rel (3,3))`` (see :func:`relative_transform`)."""
    view1 = augment_sample(sample, config, rng)
    view2 = augment_sample(sample, config, rng)
    affine, rotation = relative_transform(view1, view2)
    return view1, view2, affine, rotation
