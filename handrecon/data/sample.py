"""The one sample format every dataset reader returns.

A sample is a plain ``dict`` of numpy values. Every key is always present (unlabelled fields hold zeros and
their ``has_*`` flag is False), so ``torch.utils.data.default_collate`` batches samples of the same image
size from any mix of readers. Strings are never stored (they do not collate).

Frames and units follow DESIGN.md: OpenCV camera frame (x right, y down, z forward), metres for 3D, pixels
for 2D with pixel ``i`` centred at coordinate ``i``. Every sample shows a **right** hand: readers mirror
left hands (image flipped, ``K`` and 3D labels mirrored with :func:`handrecon.camera.mirror_intrinsics` /
:func:`handrecon.camera.mirror_points`) and set ``left``.

=====================  ==========  ===========  ===================================================
key                    dtype       shape        meaning
=====================  ==========  ===========  ===================================================
``image``              uint8       (H, W, 3)    RGB
``mask``               uint8       (H, W)       hand silhouette, 0/1 (``has_mask``)
``K``                  float32     (3, 3)       intrinsics of ``image``
``keypoints``          float32     (21, 3)      camera-space keypoints, metres, FreiHAND order
                                                (``has_keypoints_3d``)
``vertices``           float32     (778, 3)     camera-space mesh vertices, metres (``has_vertices``)
``keypoints_2d``       float32     (21, 2)      pixels; the projection of ``keypoints`` with ``K``
                                                whenever 3D is known (``has_keypoints_2d``)
``visible``            float32     (21,)        1 = keypoint visible (not occluded, inside the image);
                                                all ones when the dataset does not say
``root``               float32     (3,)         camera-space wrist = ``keypoints[0]`` (``has_root``;
                                                known without the other keypoints for HO3D evaluation)
``scale``              float32     ()           FreiHAND reference-bone length, metres:
                                                ``|keypoints[9] - keypoints[10]|`` (middle-finger MCP
                                                to PIP; the official ``pred.py`` definition)
                                                (``has_scale``)
``pose``               float32     (16, 3)      axis-angle joint rotations of the dataset's hand model
                                                (MANO for FreiHAND / HO3D, the generator's model for
                                                synthetic sets), used as given (MANO's
                                                ``flat_hand_mean=True`` convention), global rotation
                                                in this camera frame (``has_pose``)
``shape``              float32     (10,)        shape coefficients of that model (``has_pose``)
``bbox``               float32     (4,)         (x0, y0, x1, y1) pixels: a hand box given by the dataset
                                                (HO3D evaluation, RHD) (``has_bbox``)
``left``               bool        ()           the hand is a left hand (the sample was mirrored)
``index``              int64       ()           index of the sample in its dataset
``has_mask`` ...       bool        ()           ``has_mask``, ``has_keypoints_3d``, ``has_vertices``,
                                                ``has_keypoints_2d``, ``has_root``, ``has_scale``,
                                                ``has_pose``, ``has_bbox``
=====================  ==========  ===========  ===================================================

With ``pose``, ``shape`` and ``root`` known, ``hand(pose, shape, translation=root)`` reproduces
``vertices`` for the model that made the labels (up to that model's own keypoint definition).

:func:`make_sample` builds a sample from the fields a reader knows, fills defaults, derives
``keypoints_2d``, ``root`` and ``scale`` from 3D keypoints and validates everything;
:func:`validate_sample` checks an existing sample (e.g. after augmentation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handrecon.camera import project_points

__all__ = [
    "SAMPLE_KEYS",
    "FLAG_KEYS",
    "NUM_KEYPOINTS",
    "NUM_VERTICES",
    "NUM_SHAPE",
    "DatasetError",
    "make_sample",
    "empty_sample",
    "validate_sample",
]

NUM_KEYPOINTS = 21
NUM_VERTICES = 778
NUM_SHAPE = 10

#: Label flags and the field each one guards.
FLAG_KEYS = {
    "has_mask": "mask",
    "has_keypoints_3d": "keypoints",
    "has_vertices": "vertices",
    "has_keypoints_2d": "keypoints_2d",
    "has_root": "root",
    "has_scale": "scale",
    "has_pose": "pose",
    "has_bbox": "bbox",
}

# key -> (dtype, shape); None in a shape = the image's H or W.
_FIELDS: dict[str, tuple[Any, tuple]] = {
    "image": (np.uint8, ("H", "W", 3)),
    "mask": (np.uint8, ("H", "W")),
    "K": (np.float32, (3, 3)),
    "keypoints": (np.float32, (NUM_KEYPOINTS, 3)),
    "vertices": (np.float32, (NUM_VERTICES, 3)),
    "keypoints_2d": (np.float32, (NUM_KEYPOINTS, 2)),
    "visible": (np.float32, (NUM_KEYPOINTS,)),
    "root": (np.float32, (3,)),
    "scale": (np.float32, ()),
    "pose": (np.float32, (16, 3)),
    "shape": (np.float32, (NUM_SHAPE,)),
    "bbox": (np.float32, (4,)),
    "left": (np.bool_, ()),
    "index": (np.int64, ()),
}
_FIELDS.update({flag: (np.bool_, ()) for flag in FLAG_KEYS})

#: Every key of a sample, in a fixed order.
SAMPLE_KEYS = tuple(_FIELDS)


class DatasetError(ValueError):
    """A dataset file is malformed (wrong length, shape, type or value). ``path`` names the file."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = None if path is None else str(path)


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _as_field(key: str, value, H: int | None = None, W: int | None = None, where: str = "") -> Any:
    dtype, shape = _FIELDS[key]
    expected = tuple(H if s == "H" else W if s == "W" else s for s in shape)
    if dtype is np.bool_:
        if isinstance(value, np.ndarray) and value.shape != ():
            raise ValueError(f"{where}sample['{key}'] must be a scalar bool, got shape {value.shape}")
        return np.bool_(bool(value))
    if dtype is np.int64:
        if isinstance(value, np.ndarray) and value.shape != ():
            raise ValueError(f"{where}sample['{key}'] must be a scalar int, got shape {value.shape}")
        return np.int64(int(value))
    arr = np.asarray(value)
    if arr.dtype == object:
        raise ValueError(f"{where}sample['{key}'] must be numeric, got {type(value).__name__}")
    if arr.shape != expected:
        raise ValueError(f"{where}sample['{key}'] must have shape {_shape_text(expected)}, got {_shape_text(arr.shape)}")
    if dtype is np.uint8:
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        if arr.dtype != np.uint8:
            raise ValueError(f"{where}sample['{key}'] must be uint8, got {arr.dtype}")
        return np.ascontiguousarray(arr)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}sample['{key}'] contains NaN or inf")
    if shape == ():
        return np.float32(arr)
    return np.ascontiguousarray(arr, dtype=np.float32)


def make_sample(image, K, *, index: int = 0, left: bool = False, **fields) -> dict:
    """Build and validate a sample (see the module docstring for keys, dtypes and frames).

    Args:
        image: uint8 (H, W, 3) RGB.
        K: (3, 3) intrinsics.
        index, left: see the table.
        **fields: any other key of the table. A field given without its flag sets the flag True; a flag
            may be given explicitly (e.g. ``has_vertices=False`` with a placeholder). When
            ``keypoints`` are known, ``root`` (= ``keypoints[0]``), ``scale`` (= ``|k9 - k10|``) and
            ``keypoints_2d`` (projection with ``K``) are derived unless given.

    Returns:
        dict with exactly :data:`SAMPLE_KEYS`.

    Raises:
        ValueError: unknown key, wrong shape or dtype, non-finite values, a mask that is not 0/1, a flag
            set without its field, or 3D keypoints behind the camera.
    """
    unknown = set(fields) - set(SAMPLE_KEYS)
    if unknown:
        raise ValueError(f"unknown sample keys {sorted(unknown)}; expected a subset of {list(SAMPLE_KEYS)}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"sample['image'] must have shape (H, W, 3), got {image.shape}")
    H, W = image.shape[:2]
    fields = {k: v for k, v in fields.items() if v is not None}
    explicit = {flag: bool(fields.pop(flag)) for flag in list(FLAG_KEYS) if flag in fields}
    K = _as_field("K", K)
    if explicit.get("has_keypoints_3d", "keypoints" in fields) and "keypoints" in fields:
        kp = _as_field("keypoints", fields["keypoints"])
        if np.any(kp[:, 2] <= 0):
            raise ValueError("sample['keypoints'] must lie in front of the camera (z > 0)")
        fields.setdefault("root", kp[0])
        fields.setdefault("scale", np.linalg.norm(kp[9].astype(np.float64) - kp[10]))
        fields.setdefault("keypoints_2d", project_points(kp.astype(np.float64), K.astype(np.float64)))
    flags = {}
    for flag, key in FLAG_KEYS.items():
        flags[flag] = explicit.get(flag, key in fields)
        if flags[flag] and key not in fields:
            raise ValueError(f"sample flag {flag}=True needs sample['{key}']")
    if "shape" in fields and "pose" not in fields:
        raise ValueError("sample['shape'] given without sample['pose']")
    out: dict[str, Any] = {"image": _as_field("image", image, H, W), "K": K}

    defaults = {
        "mask": np.zeros((H, W), np.uint8),
        "keypoints": np.zeros((NUM_KEYPOINTS, 3), np.float32),
        "vertices": np.zeros((NUM_VERTICES, 3), np.float32),
        "keypoints_2d": np.zeros((NUM_KEYPOINTS, 2), np.float32),
        "visible": np.ones(NUM_KEYPOINTS, np.float32),
        "root": np.zeros(3, np.float32),
        "scale": np.float32(0.0),
        "pose": np.zeros((16, 3), np.float32),
        "shape": np.zeros(NUM_SHAPE, np.float32),
        "bbox": np.zeros(4, np.float32),
    }
    for key, default in defaults.items():
        out[key] = _as_field(key, fields.get(key, default), H, W)
    out["left"] = np.bool_(bool(left))
    out["index"] = np.int64(int(index))
    out.update({flag: np.bool_(v) for flag, v in flags.items()})
    # Zero unlabelled fields so that stale values never leak into a loss.
    for flag, key in FLAG_KEYS.items():
        if not flags[flag]:
            out[key] = _as_field(key, defaults[key], H, W)
    if not flags["has_pose"]:
        out["shape"] = defaults["shape"]
    return validate_sample({k: out[k] for k in SAMPLE_KEYS})


def empty_sample(height: int, width: int, K=None, index: int = 0) -> dict:
    """A sample with a black image and no labels (``K`` defaults to a 60-degree camera)."""
    from handrecon.camera import intrinsics_from_fov

    K = intrinsics_from_fov(60.0, width, height) if K is None else K
    return make_sample(np.zeros((height, width, 3), np.uint8), K, index=index)


def validate_sample(sample: dict, where: str = "") -> dict:
    """Check that ``sample`` has exactly :data:`SAMPLE_KEYS` with the documented dtypes and shapes, finite
    values, a 0/1 mask and a valid ``K``; returns it unchanged. ``where`` prefixes error messages."""
    from handrecon.camera import check_intrinsics

    if not isinstance(sample, dict):
        raise ValueError(f"{where}a sample must be a dict, got {type(sample).__name__}")
    missing = [k for k in SAMPLE_KEYS if k not in sample]
    extra = [k for k in sample if k not in _FIELDS]
    if missing or extra:
        raise ValueError(f"{where}sample keys do not match the format: missing {missing}, unexpected {extra}")
    image = sample["image"]
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"{where}sample['image'] must be a (H, W, 3) uint8 array")
    H, W = image.shape[:2]
    for key, (dtype, _) in _FIELDS.items():
        value = sample[key]
        _as_field(key, value, H, W, where)  # shape, finiteness
        if dtype is np.bool_:
            ok = isinstance(value, (bool, np.bool_))
        elif dtype is np.int64:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        else:
            ok = isinstance(value, (np.ndarray, np.generic)) and value.dtype == np.dtype(dtype)
        if not ok:
            got = getattr(value, "dtype", type(value).__name__)
            raise ValueError(f"{where}sample['{key}'] must be {np.dtype(dtype).name}, got {got}")
    if sample["mask"].size and sample["mask"].max() > 1:
        raise ValueError(f"{where}sample['mask'] must hold 0/1, found {int(sample['mask'].max())}")
    check_intrinsics(sample["K"], f"{where}sample['K']")
    return sample
