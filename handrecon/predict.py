"""Camera-space hand meshes from images: the product API behind ``handrecon predict``.

>>> from handrecon import Predictor
>>> p = Predictor.from_pretrained()                       # bundled model, PyTorch; runtime="onnx" for ONNX Runtime
>>> pred = p.predict("hand.jpg", bbox=(120, 80, 380, 340))  # K from EXIF, else an assumed lens (pred.K_source)
>>> pred.vertices, pred.keypoints, pred.root              # (778,3), (21,3), (3,) camera space, metres
>>> pred.keypoints_2d, pred.silhouette                    # (21,2) and (H,W) in the image's pixels
>>> preds = p.predict_batch(["a.jpg", "b.png"], bboxes=[None, (10, 10, 90, 90)], lefts=[False, True])

What :meth:`Predictor.predict` does (the same for both runtimes; only the network call differs):

1. Checks the inputs (ValueError naming the argument) and reads the image (OpenCV; EXIF focal length from
   JPEG files, see :mod:`handrecon.intrinsics`).
2. ``left=True``: mirrors the image, ``K`` and ``bbox`` (the models see right hands only).
3. Crops the square the models were evaluated on (:func:`handrecon.data.eval_crop`): the ``bbox``'s longer
   side x 1.3 around its centre, or the whole image (the square around it, padded black) without a bbox;
   resamples it to the model's input size ``S`` as :func:`handrecon.data.crop_sample` does (anti-aliased).
   The crop is a change of camera: ``K_crop = A K`` for the crop affine ``A``.
4. Runs the model: root-relative vertices (and keypoints, else regressed with the hand's keypoint regressor),
   2D keypoints in crop pixels and, when it has one, a silhouette.
5. Registers the root (:func:`handrecon.registration.register_root`) with ``K_crop``, the crop's 2D keypoints
   and the silhouette (probabilities upsampled to crop pixels): that is the camera-space root directly.
6. Maps the 2D keypoints and the silhouette back to image pixels, un-mirrors left hands.

:class:`Prediction` holds the result; :func:`write_prediction` and :func:`save_overlay` write the files of the
command line (OBJ, PLY, JSON, PNG overlay).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from handrecon.camera import (
    apply_affine,
    crop_affine,
    invert_affine,
    mirror_intrinsics,
    mirror_points,
    transform_intrinsics,
)
from handrecon.fileio import atomic_path
from handrecon.intrinsics import as_intrinsics, assumed_intrinsics, exif_intrinsics, image_header_size

__all__ = [
    "Predictor",
    "Prediction",
    "Prepared",
    "RUNTIMES",
    "MIN_IMAGE_SIDE",
    "MAX_IMAGE_SIDE",
    "IMAGE_SUFFIXES",
    "read_image",
    "resolve_model",
    "crop_region",
    "crop_image",
    "cache_dir",
    "onnx_cache_path",
    "collect_inputs",
    "output_stems",
    "predict_files",
    "write_prediction",
    "save_overlay",
    "overlay_image",
]

RUNTIMES = ("torch", "onnx")
#: Images with a side shorter than this (pixels) are refused.
MIN_IMAGE_SIDE = 16
#: Images with a side longer than this (pixels) are refused.
MAX_IMAGE_SIDE = 8192
#: File suffixes taken from folders (any case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Prediction:
    """One hand, in the frame of the input image (left hands un-mirrored).

    Attributes:
        vertices: (778,3) camera-space mesh, metres (OpenCV camera: x right, y down, z forward).
        keypoints: (21,3) camera-space keypoints, metres, FreiHAND order.
        keypoints_2d: (21,2) keypoints in image pixels (the network's 2D estimate, mapped back from the crop).
        root: (3,) camera-space root (wrist), metres: ``vertices - root`` is the root-relative mesh.
        silhouette: (H,W) float32 hand probability in image pixels (0 outside the crop), or None when the
            model predicts none.
        mode: root registration mode, "2d" | "1d" | "blend" | "failed" (then ``root`` is a placeholder
            straight ahead at 0.6 m: only the root-relative shape means something).
        K: (3,3) intrinsics of the image used.
        K_source: "given" | "exif" | "assumed-fov" (see :mod:`handrecon.intrinsics`; with "assumed-fov" the
            absolute depth is only as good as the assumed lens).
        bbox: (4,) the hand box (x0, y0, x1, y1) given, or None.
        bbox_source: "given", "whole image" (no bbox, no refinement) or "refined" (no bbox: the crop is
            around the 2D keypoints of a first pass on the whole image).
        crop: (4,) the square (x0, y0, x1, y1) of image pixels the model saw.
        model: the model's name.
        left: whether the hand was treated as a left hand.
        image_size: (H, W) of the image.
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    keypoints_2d: np.ndarray
    root: np.ndarray
    silhouette: np.ndarray | None
    mode: str
    K: np.ndarray
    K_source: str
    bbox: np.ndarray | None
    crop: np.ndarray
    model: str
    left: bool
    image_size: tuple[int, int]
    bbox_source: str = "given"

    def to_json(self) -> dict:
        """JSON-able dict of everything but the silhouette (3D rounded to 1 micrometre, 2D to 0.001 px)."""
        r = lambda a, d: np.round(np.asarray(a, np.float64), d).tolist()  # noqa: E731
        return {
            "vertices": r(self.vertices, 6),
            "keypoints": r(self.keypoints, 6),
            "keypoints_2d": r(self.keypoints_2d, 3),
            "root": r(self.root, 6),
            "mode": self.mode,
            "K": r(self.K, 6),
            "K_source": self.K_source,
            "bbox": None if self.bbox is None else r(self.bbox, 3),
            "bbox_source": self.bbox_source,
            "crop": r(self.crop, 3),
            "model": self.model,
            "left": bool(self.left),
            "image_size": [int(self.image_size[0]), int(self.image_size[1])],
            "units": {"3d": "metres, OpenCV camera frame (x right, y down, z forward)", "2d": "pixels"},
        }


@dataclasses.dataclass
class Prepared:
    """A checked input ready for :meth:`Predictor.predict_prepared` (made by :meth:`Predictor.prepare`).

    ``image`` is the RGB image as read (not mirrored); ``K`` its intrinsics and ``K_source`` where they came
    from; ``bbox`` (4,) or None; ``left``; ``name`` the input's name in messages (a path or ``image``)."""

    image: np.ndarray
    K: np.ndarray
    K_source: str
    bbox: np.ndarray | None
    left: bool
    name: str


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------
def _check_size(H: int, W: int, name: str) -> None:
    if min(H, W) < MIN_IMAGE_SIDE:
        raise ValueError(f"{name}: the image is too small ({W}x{H} pixels; at least {MIN_IMAGE_SIDE} "
                         "pixels per side are needed)")
    if max(H, W) > MAX_IMAGE_SIDE:
        raise ValueError(f"{name}: the image is too large ({W}x{H} pixels; at most {MAX_IMAGE_SIDE} pixels per "
                         "side; downscale it first)")


def read_image(path, name: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 (H,W,3) RGB image, K from its EXIF focal length or None) of an image file.

    Raises ValueError (naming ``name``, default the path) when the file is missing, unreadable, not an image,
    smaller than :data:`MIN_IMAGE_SIDE` or larger than :data:`MAX_IMAGE_SIDE` pixels (checked from the
    header before decoding where the format allows)."""
    path = Path(path)
    name = name or f"'{path}'"
    if not path.is_file():
        raise ValueError(f"{name}: no such file" if not path.exists() else f"{name}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    size = image_header_size(data)
    if size is not None:
        _check_size(size[0], size[1], name)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise ValueError(f"{name}: not a readable image (OpenCV cannot decode it)")
    H, W = bgr.shape[:2]
    _check_size(H, W, name)
    image = np.ascontiguousarray(bgr[:, :, ::-1])
    return image, exif_intrinsics(data, W, H)


def _check_array_image(image, name: str) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a uint8 (H,W,3) RGB numpy array or a path, got a torch.Tensor")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a uint8 (H,W,3) RGB numpy array or a path to an image file, "
                         f"got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) (RGB), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (RGB 0..255), got {image.dtype}")
    _check_size(image.shape[0], image.shape[1], name)
    return np.ascontiguousarray(image)


def _check_bbox(bbox, H: int, W: int, name: str) -> np.ndarray | None:
    if bbox is None:
        return None
    if hasattr(bbox, "detach"):
        bbox = bbox.detach().cpu().numpy()
    try:
        b = np.asarray(bbox, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 4 numbers (x0, y0, x1, y1) in pixels, got {bbox!r}") from None
    if b.shape != (4,):
        raise ValueError(f"{name} must be 4 numbers (x0, y0, x1, y1) in pixels, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or inf: {b.tolist()}")
    x0, y0, x1, y1 = b
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{name} must have x1 > x0 and y1 > y0, got {b.tolist()}")
    if x1 < -0.5 or y1 < -0.5 or x0 > W - 0.5 or y0 > H - 0.5:
        raise ValueError(f"{name} {b.tolist()} does not overlap the {W}x{H} image")
    return b


def _check_left(left, name: str) -> bool:
    if isinstance(left, (bool, np.bool_)) or (isinstance(left, (int, np.integer)) and left in (0, 1)):
        return bool(left)
    raise ValueError(f"{name} must be True or False, got {left!r}")


def _numeric_shape(value) -> tuple | None:
    """Shape of ``value`` as a numeric array, None if it is not one (None entries, ragged lists, strings)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return a.shape if a.dtype.kind in "iuf" else None


def _mirror_bbox(bbox, W: int):
    if bbox is None:
        return None
    x0, y0, x1, y1 = bbox
    return np.array([W - 1 - x1, y0, W - 1 - x0, y1])


# ---------------------------------------------------------------------------------------------------------
# Crop
# ---------------------------------------------------------------------------------------------------------
def crop_region(height: int, width: int, bbox=None, scale: float = 1.3) -> tuple[np.ndarray, float]:
    """(centre (2,), side) in pixels of the square the model sees: the evaluation crop of training
    (:func:`handrecon.data.eval_crop` with ``Augmentation(eval_crop="box")``: the bbox's longer side x
    ``scale`` around its centre) or, without a bbox, ``eval_crop="full"`` (the square around the whole image)."""
    from handrecon.data.augment import Augmentation, eval_crop

    stub = {  # the fields eval_crop reads; the image is a zero-stride view (no memory)
        "image": np.broadcast_to(np.zeros((), np.uint8), (int(height), int(width), 3)),
        "has_bbox": bbox is not None,
        "bbox": np.zeros(4, np.float32) if bbox is None else np.asarray(bbox, np.float64),
        "has_keypoints_2d": False,
        "has_mask": False,
    }
    center, side, _ = eval_crop(stub, Augmentation(eval_crop="full" if bbox is None else "box", eval_scale=scale))
    return np.asarray(center, np.float64), float(side)


def _keypoint_box(keypoints_2d: np.ndarray, height: int, width: int, min_side: float = 16.0) -> np.ndarray:
    """(4,) box (x0, y0, x1, y1) of 2D keypoints, clipped to the image, at least ``min_side`` pixels a side."""
    lo = np.clip(keypoints_2d.min(0), 0, [width - 1, height - 1])
    hi = np.clip(keypoints_2d.max(0), 0, [width - 1, height - 1])
    grow = np.maximum(min_side - (hi - lo), 0) / 2
    return np.concatenate([lo - grow, hi + grow])


def crop_image(image: np.ndarray, affine: np.ndarray, output_size: int, side: float) -> np.ndarray:
    """The (S,S,3) crop of ``image`` by ``affine`` (a :func:`handrecon.camera.crop_affine` of ``side``
    pixels), resampled like :func:`handrecon.data.crop_sample` (Gaussian anti-aliasing before a strong
    downscale, bilinear, black outside), but touching only the region the crop reads (plus the blur's reach),
    so a large photo costs little more than a small one."""
    S = int(output_size)
    factor = side / S
    sigma = 0.5 * math.sqrt(factor * factor - 1) if factor > 1.5 else 0.0
    A = np.asarray(affine, np.float64)
    H, W = image.shape[:2]
    corners = np.array([[-1.0, -1.0], [S, -1.0], [S, S], [-1.0, S]])
    src = apply_affine(corners, invert_affine(A))
    margin = int(math.ceil(4 * sigma)) + 2  # beyond OpenCV's Gaussian kernel radius (3 sigma for uint8)
    x0 = max(0, int(math.floor(src[:, 0].min())) - margin)
    y0 = max(0, int(math.floor(src[:, 1].min())) - margin)
    x1 = min(W, int(math.ceil(src[:, 0].max())) + margin + 1)
    y1 = min(H, int(math.ceil(src[:, 1].max())) + margin + 1)
    if x1 <= x0 or y1 <= y0:  # the crop lies off the image
        return np.zeros((S, S, 3), np.uint8)
    roi = np.ascontiguousarray(image[y0:y1, x0:x1])
    if sigma > 0:
        roi = cv2.GaussianBlur(roi, (0, 0), sigma)
    A = A.copy()
    A[:, 2] += A[:, :2] @ np.array([x0, y0], np.float64)  # roi pixel q = image pixel - (x0, y0)
    return cv2.warpAffine(roi, A, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


# ---------------------------------------------------------------------------------------------------------
# Models and runtimes
# ---------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _keypoint_regressor() -> np.ndarray:
    from handrecon.hand import load_hand_model

    return load_hand_model("open").keypoint_regressor.detach().double().cpu().numpy()


@functools.lru_cache(maxsize=1)
def _faces() -> np.ndarray:
    from handrecon.hand import load_hand_model

    return load_hand_model("open").faces.cpu().numpy().astype(np.int64)


def _model_name(model) -> str:
    return str(getattr(model, "pretrained_name", None) or getattr(model, "preset", None) or type(model).__name__)


def _input_size(model) -> int:
    S = getattr(model, "input_size", None) or getattr(getattr(model, "config", None), "input_size", None)
    if S is None:
        raise ValueError("model has no input_size (nor config.input_size)")
    return int(S)


def cache_dir() -> Path:
    """Where exported ONNX files are kept: ``$HANDRECON_CACHE``, else ``$XDG_CACHE_HOME/handrecon``, else
    ``~/.cache/handrecon``."""
    if os.environ.get("HANDRECON_CACHE"):
        return Path(os.environ["HANDRECON_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "handrecon"


def _fingerprint(model: nn.Module) -> str:
    """Hash of a model's preset, config and weights (names the cached ONNX export)."""
    from handrecon import __version__
    from handrecon.export import DEFAULT_OPSET, EXPORT_REVISION

    h = hashlib.sha256()
    config = getattr(model, "config", None)
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else repr(config)
    h.update(json.dumps([_model_name(model), getattr(model, "preset", None), config, __version__, DEFAULT_OPSET,
                         EXPORT_REVISION, torch.__version__], sort_keys=True, default=str).encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def onnx_cache_path(model: nn.Module) -> Path:
    """Where ``Predictor(model, runtime="onnx")`` keeps the model's ONNX export:
    ``cache_dir()/onnx/NAME-HASH.onnx``, HASH covering the preset, config, weights and library versions."""
    return cache_dir() / "onnx" / f"{_model_name(model)}-{_fingerprint(model)}.onnx"


def resolve_model(spec=None) -> nn.Module:
    """A model from a command-line value: None (the bundled default), the name of a bundled model
    (:func:`handrecon.models.pretrained.list_pretrained`) or saved weights ``PATH`` / ``PATH.safetensors``
    (+ ``PATH.json``, as :func:`handrecon.models.save_model` writes). Returned in eval mode, float32."""
    from handrecon.models.pretrained import list_pretrained, load_pretrained

    if spec is None:
        return load_pretrained()
    spec = str(spec)
    bundled = list_pretrained()
    if spec in bundled:
        return load_pretrained(spec)
    path = Path(spec)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    if stem.with_suffix(".safetensors").is_file():
        from handrecon.models import load_model

        model = load_model(stem).float().eval()
        model.pretrained_name = stem.name
        return model
    raise ValueError(f"--model {spec!r} is neither a bundled model (available: {sorted(bundled) or 'none'}) nor "
                     "saved weights PATH.safetensors (+ PATH.json)")


# ---------------------------------------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------------------------------------
class Predictor:
    """Camera-space hand meshes from RGB images with one model (see the module docstring).

    Args:
        model: an ``nn.Module`` following :mod:`handrecon.models.registry`'s interface (float32 (B,3,S,S) RGB
            in [0,1] -> dict); may be None with ``runtime="onnx"`` and ``onnx_path``.
        runtime: ``"torch"`` or ``"onnx"`` (ONNX Runtime; the model is exported once to
            :func:`cache_dir` unless ``onnx_path`` is given).
        onnx_path: an ONNX file made by :func:`handrecon.export.export_onnx` (runtime "onnx").
        device: torch device for runtime "torch" ("cuda" also picks ONNX Runtime's CUDA provider if present).
        num_threads: intra-op threads (ONNX Runtime session; for torch this sets ``torch.set_num_threads``,
            which is process-wide). None leaves the library defaults.
        crop_scale: the crop around a hand box is its longer side times this; None: the value the model was
            trained for (``crop_scale`` in a bundled model's JSON), else 1.3 (CMR/MobRecon).
        refine: without a bbox, the first pass sees the whole image; each of ``refine`` further passes crops
            around the previous pass's 2D keypoints (a hand detector's job, done by the model itself).
    """

    def __init__(self, model: nn.Module | None = None, runtime: str = "torch", onnx_path=None, device="cpu",
                 num_threads: int | None = None, crop_scale: float | None = None, refine: int = 1):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        if num_threads is not None and (not isinstance(num_threads, (int, np.integer)) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        if model is not None and not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if crop_scale is None:
            crop_scale = float(getattr(model, "pretrained_info", {}).get("crop_scale", 1.3))
        if not (isinstance(crop_scale, (int, float)) and 1.0 <= crop_scale <= 4.0):
            raise ValueError(f"crop_scale must be a number in [1, 4], got {crop_scale!r}")
        if not isinstance(refine, (int, np.integer)) or not 0 <= refine <= 5:
            raise ValueError(f"refine must be an integer in [0, 5], got {refine!r}")
        self.crop_scale, self.refine = float(crop_scale), int(refine)
        self.runtime = runtime
        self.device = torch.device(device)
        self.num_threads = num_threads
        self.model = model
        self.session = None
        self.onnx_path = None
        if runtime == "torch":
            if model is None:
                raise ValueError("model is required with runtime='torch'")
            if onnx_path is not None:
                raise ValueError("onnx_path is only used with runtime='onnx'")
            if num_threads is not None:
                torch.set_num_threads(int(num_threads))
            self.model = model.to(self.device).eval()
            self.input_size = _input_size(model)
            self.name = _model_name(model)
            return
        if onnx_path is None:
            if model is None:
                raise ValueError("runtime='onnx' needs a model (exported once to the cache) or onnx_path")
            onnx_path = self._cached_export(model)
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ValueError(f"onnx_path: no such file: '{onnx_path}'")
        from handrecon.export import onnx_metadata, onnx_session

        self.onnx_path = onnx_path
        try:
            self.session = onnx_session(onnx_path, num_threads, device)
            meta = onnx_metadata(onnx_path)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime and onnx raise their own kinds
            raise ValueError(f"onnx_path: cannot load '{onnx_path}' as an ONNX model ({type(exc).__name__}: "
                             f"{str(exc).strip()[:200]})") from None
        shape = self.session.get_inputs()[0].shape
        self.input_size = int(meta.get("input_size") or shape[-1])
        self.name = _model_name(model) if model is not None else meta.get("model", onnx_path.stem)
        self._outputs = [o.name for o in self.session.get_outputs()]
        if "vertices" not in self._outputs:
            raise ValueError(f"onnx_path: '{onnx_path}' has no 'vertices' output (not a handrecon export?)")

    # ----------------------------------------------------------------------------------------- construction
    @staticmethod
    def _cached_export(model: nn.Module) -> Path:
        from handrecon.export import export_onnx

        path = onnx_cache_path(model)
        if path.is_file():
            try:
                import onnx

                onnx.checker.check_model(str(path))
                return path
            except Exception:  # noqa: BLE001 - a damaged cache file is exported again
                pass
        return export_onnx(model, path)

    @classmethod
    def from_pretrained(cls, name: str | None = None, runtime: str = "torch", onnx_path=None, device="cpu",
                        num_threads: int | None = None, refine: int = 1) -> "Predictor":
        """The bundled model ``name`` (default :data:`handrecon.models.pretrained.DEFAULT_MODEL`), offline.
        With ``runtime="onnx"`` it is exported once to ``cache_dir()/onnx/`` (``HANDRECON_CACHE`` overrides
        the folder) and reused, or read from ``onnx_path``."""
        from handrecon.models.pretrained import load_pretrained

        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        model = load_pretrained(name)
        return cls(model, runtime=runtime, onnx_path=onnx_path, device=device, num_threads=num_threads,
                   refine=refine)

    def __repr__(self) -> str:
        return f"Predictor(model={self.name!r}, runtime={self.runtime!r}, input_size={self.input_size})"

    # ----------------------------------------------------------------------------------------------- inputs
    def prepare(self, image, K=None, bbox=None, left=False, names: Sequence[str] | None = None) -> Prepared:
        """Check one input and read it (``image`` a uint8 (H,W,3) RGB array or a path). ``names`` are the
        argument names used in error messages (default ``image``, ``K``, ``bbox``, ``left``)."""
        n_image, n_K, n_bbox, n_left = names or ("image", "K", "bbox", "left")
        left = _check_left(left, n_left)
        exif_K = None
        if isinstance(image, (str, os.PathLike)):
            label = str(image)
            array, exif_K = read_image(image, f"{n_image} ('{image}')")
        else:
            label = n_image
            array = _check_array_image(image, n_image)
        H, W = array.shape[:2]
        if K is not None:
            K, source = as_intrinsics(K, n_K), "given"
        elif exif_K is not None:
            K, source = exif_K, "exif"
        else:
            K, source = assumed_intrinsics(W, H), "assumed-fov"
        return Prepared(array, K, source, _check_bbox(bbox, H, W, n_bbox), left, label)

    # ------------------------------------------------------------------------------------------- prediction
    def predict(self, image, K=None, bbox=None, left: bool = False) -> Prediction:
        """One hand in ``image`` (uint8 (H,W,3) RGB array or a path).

        Args:
            image: the image.
            K: (3,3) intrinsics or (fx, fy, cx, cy); None: from the JPEG's EXIF, else assumed
                (:mod:`handrecon.intrinsics`; see ``Prediction.K_source``).
            bbox: (x0, y0, x1, y1) pixels around the hand, or None (the first pass sees the whole image,
                then ``refine`` passes crop around the hand found; see the class docstring).
            left: the hand is a left hand.

        Raises:
            ValueError: naming the argument (not an image, wrong dtype or shape, smaller than 16 or larger
                than 8192 pixels, K not 3x3 or with non-positive focal lengths, bbox not 4 numbers or off
                the image, NaN).
        """
        return self.predict_prepared([self.prepare(image, K, bbox, left)])[0]

    def predict_batch(self, images: Sequence, Ks=None, bboxes=None, lefts=None) -> list[Prediction]:
        """:meth:`predict` for several images in one network call.

        ``Ks``, ``bboxes``, ``lefts``: None, one value for every image (a (3,3) K, 4 numbers, a bool), or a
        list with one entry per image (entries may be None). Errors name the entry, e.g. ``images[2]``.
        """
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            raise ValueError("images must be a list of images or paths (use predict() for one image)")
        images = list(images)
        n = len(images)
        Ks = self._per_image(Ks, n, "Ks", lambda v: _numeric_shape(v) in ((3, 3), (4,), (9,)))
        bboxes = self._per_image(bboxes, n, "bboxes", lambda v: _numeric_shape(v) == (4,))
        lefts = self._per_image(lefts, n, "lefts", lambda v: isinstance(v, (bool, np.bool_)))
        prepared = [self.prepare(images[i], Ks[i], bboxes[i], False if lefts[i] is None else lefts[i],
                                 (f"images[{i}]", f"Ks[{i}]", f"bboxes[{i}]", f"lefts[{i}]")) for i in range(n)]
        return self.predict_prepared(prepared)

    @staticmethod
    def _per_image(value, n, name, is_single):
        if value is None:
            return [None] * n
        if is_single(value):
            return [value] * n
        if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim >= 1:
            value = list(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be None, one value for all images or a list of {n}, got "
                             f"{type(value).__name__}")
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} images")
        return list(value)

    def _run(self, x: np.ndarray) -> dict:
        """(B,3,S,S) float32 -> {key: float64 numpy array}."""
        if self.session is not None:
            out = self.session.run(None, {"image": x})
            return {k: np.asarray(v, np.float64) for k, v in zip(self._outputs, out)}
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device))
        if not isinstance(out, dict) or not isinstance(out.get("vertices"), torch.Tensor):
            raise ValueError("the model must return a dict with a 'vertices' tensor")
        return {k: v.detach().float().cpu().numpy().astype(np.float64) for k, v in out.items()
                if isinstance(v, torch.Tensor)}

    def predict_prepared(self, items: Sequence[Prepared]) -> list[Prediction]:
        """Predict checked inputs (:meth:`prepare`): one network call per pass, plus ``refine`` passes for the
        inputs without a bbox, each cropping around the previous pass's 2D keypoints."""
        items = list(items)
        preds = self._predict_pass(items)
        todo = [i for i, it in enumerate(items) if it.bbox is None]
        for _ in range(self.refine if todo else 0):
            boxes = [_keypoint_box(preds[i].keypoints_2d, *items[i].image.shape[:2]) for i in todo]
            again = self._predict_pass([dataclasses.replace(items[i], bbox=box) for i, box in zip(todo, boxes)])
            for i, pred in zip(todo, again):
                pred.bbox, pred.bbox_source = None, "refined"
                preds[i] = pred
        return preds

    def _predict_pass(self, items: Sequence[Prepared]) -> list[Prediction]:
        """One network call over checked inputs; vectorised over the batch except for the image crops and the
        silhouettes' warps (images differ in size)."""
        from handrecon.camera import uncrop_map
        from handrecon.registration import register_root

        items = list(items)
        B = len(items)
        if B == 0:
            return []
        S = self.input_size
        crops, affines, K_crops, Ks_m, centers, sides = [], [], [], [], [], []
        for it in items:
            H, W = it.image.shape[:2]
            image, K, bbox = it.image, it.K, it.bbox
            if it.left:  # the models know right hands: mirror the input, un-mirror the result
                image, K, bbox = image[:, ::-1], mirror_intrinsics(K, W), _mirror_bbox(bbox, W)
            center, side = crop_region(H, W, bbox, self.crop_scale)
            A = crop_affine(center, side, S)
            K_crop, R = transform_intrinsics(K, A)  # R = identity: the crop has no rotation
            crops.append(crop_image(image, A, S, side))
            affines.append(A)
            K_crops.append(K_crop)
            Ks_m.append(K)
            centers.append(center)
            sides.append(side)
        affines, K_crops, Ks_m = np.stack(affines), np.stack(K_crops), np.stack(Ks_m)
        x = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        out = self._run(x)

        verts = out["vertices"]
        if verts.ndim != 3 or verts.shape[0] != B or verts.shape[2] != 3:
            raise ValueError(f"the model returned vertices of shape {verts.shape}, expected ({B}, V, 3)")
        kps = out.get("keypoints")
        if kps is None:
            kps = np.einsum("kv,bvc->bkc", _keypoint_regressor(), verts)
        uv = out.get("keypoints_2d")
        confidence = None
        if uv is None:  # no 2D cue: registration uses the silhouette alone (or fails)
            uv = np.zeros(kps.shape[:2] + (2,))
            confidence = np.zeros(kps.shape[:2])
        prob = None
        if out.get("silhouette") is not None:
            logits = torch.from_numpy(out["silhouette"])
            logits = logits if logits.ndim == 4 else logits[:, None]
            prob = torch.sigmoid(logits)[:, 0]  # (B,s,s)
            sil_crop = torch.nn.functional.interpolate(prob[:, None], size=(S, S), mode="bilinear",
                                                       align_corners=False)[:, 0].numpy()
        else:
            sil_crop = None
        reg = register_root(verts, kps, uv, K_crops, silhouette=sil_crop, confidence=confidence)
        root = np.asarray(reg.root, np.float64)
        verts_cam = verts + root[:, None]
        kps_cam = kps + root[:, None]
        if out.get("keypoints_2d") is not None:
            uv_img = apply_affine(uv, invert_affine(affines))  # (B,21,2) crop -> image pixels
        else:
            z = np.maximum(kps_cam[..., 2:3], 1e-6)
            uv_img = np.einsum("bij,bkj->bki", Ks_m, kps_cam / z)[..., :2]

        results = []
        for b, it in enumerate(items):
            H, W = it.image.shape[:2]
            v, k, r, u = verts_cam[b], kps_cam[b], root[b], uv_img[b].copy()
            sil = None
            if prob is not None:
                sil = uncrop_map(prob[b].numpy(), affines[b], S, (H, W))
            c, half = centers[b], sides[b] / 2
            crop = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])
            if it.left:
                v, k, r = mirror_points(v), mirror_points(k), mirror_points(r[None])[0]
                u[:, 0] = W - 1 - u[:, 0]
                crop = _mirror_bbox(crop, W)
                if sil is not None:
                    sil = np.ascontiguousarray(sil[:, ::-1])
            results.append(Prediction(
                vertices=v, keypoints=k, keypoints_2d=u, root=r, silhouette=sil, mode=str(reg.mode[b]),
                K=np.asarray(it.K, np.float64), K_source=it.K_source, bbox=it.bbox, crop=crop, model=self.name,
                left=it.left, image_size=(H, W), bbox_source="given" if it.bbox is not None else "whole image"))
        return results


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------
def write_prediction(prediction: Prediction, folder, stem: str, extra: dict | None = None) -> dict[str, Path]:
    """Write ``STEM.obj`` and ``STEM.ply`` (camera-space mesh, metres) and ``STEM.json``
    (:meth:`Prediction.to_json` plus ``extra``) into ``folder``, each atomically. Returns {suffix: path}."""
    from handrecon.mesh import save_mesh

    folder = Path(folder)
    files = {}
    for suffix in (".obj", ".ply"):
        files[suffix[1:]] = save_mesh(folder / f"{stem}{suffix}", prediction.vertices, _faces())
    info = prediction.to_json()
    info.update(extra or {})
    path = folder / f"{stem}.json"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=1, allow_nan=False), encoding="utf-8")
    files["json"] = path
    return files


def overlay_image(image: np.ndarray, prediction: Prediction, max_side: int = 1024) -> np.ndarray:
    """(H',W'+H',3) uint8 RGB: the mesh rendered over the image with ``prediction.K`` and the 2D skeleton,
    beside a side view of the mesh (seen from the camera's right). Images larger than ``max_side`` are
    shown downscaled. Raises :class:`handrecon.render.RendererUnavailable` without a GL context."""
    from handrecon.render import draw_keypoints, overlay_mesh, side_view

    H, W = image.shape[:2]
    s = min(1.0, max_side / max(H, W))
    if s < 1.0:
        w, h = max(1, round(W * s)), max(1, round(H * s))
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        sx, sy = w / W, h / H
    else:
        h, w, sx, sy = H, W, 1.0, 1.0
    # pixel centres: u' = s (u + 0.5) - 0.5
    to_display = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    K = to_display @ prediction.K
    uv = prediction.keypoints_2d * np.array([sx, sy]) + np.array([0.5 * sx - 0.5, 0.5 * sy - 0.5])
    faces = _faces()
    panel = overlay_mesh(image, prediction.vertices, faces, K)
    panel = draw_keypoints(panel, uv)
    side = side_view(prediction.vertices, faces, size=(h, h), angle_deg=90.0)
    return np.concatenate([panel, side], axis=1)


def save_overlay(path, image: np.ndarray, prediction: Prediction, max_side: int = 1024) -> Path:
    """Write :func:`overlay_image` as PNG, atomically."""
    picture = overlay_image(image, prediction, max_side)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(picture[:, :, ::-1]))
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.tobytes())
    return path


# ---------------------------------------------------------------------------------------------------------
# Batches of files (the command line)
# ---------------------------------------------------------------------------------------------------------
def collect_inputs(inputs) -> tuple[list[Path], list[tuple[str, str]]]:
    """(image files, [(input, reason)] of inputs that give none). A file is taken whatever its suffix; a
    folder gives its files with an image suffix (:data:`IMAGE_SUFFIXES`, any case), sorted by name, not
    recursing into sub-folders and skipping hidden files. A file named twice is taken once."""
    files, bad, seen = [], [], set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                bad.append((str(item), f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})"))
        elif p.exists():
            found = [p]
        else:
            bad.append((str(item), "no such file or folder"))
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, bad


def output_stems(paths: Sequence[Path]) -> list[str]:
    """One output name per input: its stem, suffixed ``-2``, ``-3``, ... where stems repeat (case-insensitively;
    inputs from different folders never overwrite each other's files)."""
    used, out = set(), []
    for p in paths:
        stem = Path(p).stem or "image"
        name, k = stem, 1
        while name.lower() in used:
            k += 1
            name = f"{stem}-{k}"
        used.add(name.lower())
        out.append(name)
    return out


def predict_files(predictor: Predictor, files: Sequence[Path], out, K=None, bbox=None, left: bool = False,
                  batch_size: int = 8, overlays: bool = True, progress: bool = True, log=None) -> dict:
    """Predict image files in batches and write ``STEM.obj``, ``STEM.ply``, ``STEM.json`` and ``STEM.png``
    (overlay) per image into ``out`` (:func:`output_stems` names them). A bad input (unreadable, not an image,
    too small or large, a ``bbox`` off that image) is reported through ``log`` and skipped.

    Returns {"written": [(path, stem)], "failed": [(path, reason)], "assumed_K": [paths], "exif_K": [paths],
    "registration_failed": [paths], "overlays": bool (False when the renderer was unavailable)}.
    """
    from tqdm import tqdm

    from handrecon.render import RendererUnavailable

    if log is None:
        def log(message):
            tqdm.write(message, file=sys.stderr)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    files = [Path(f) for f in files]
    stems = output_stems(files)
    summary = {"written": [], "failed": [], "assumed_K": [], "exif_K": [], "registration_failed": [],
               "overlays": bool(overlays)}
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(files), int(batch_size)):
        chunk = list(zip(files[start:start + int(batch_size)], stems[start:start + int(batch_size)]))
        ready = []
        for path, stem in chunk:
            try:
                ready.append((predictor.prepare(path, K, bbox, left, ("input", "--K", "--bbox", "--left")),
                              path, stem))
            except ValueError as exc:
                message = str(exc) if str(path) in str(exc) else f"'{path}': {exc}"
                summary["failed"].append((str(path), message))
                log(f"error: {message}; skipped")
        try:
            preds = predictor.predict_prepared([r[0] for r in ready])
        except ValueError:  # isolate the input that breaks the batch
            preds = []
            for item, path, _ in ready:
                try:
                    preds.append(predictor.predict_prepared([item])[0])
                except ValueError as exc:
                    preds.append(None)
                    summary["failed"].append((str(path), str(exc)))
                    log(f"error: '{path}': {exc}; skipped")
        for (item, path, stem), pred in zip(ready, preds):
            if pred is None:
                continue
            write_prediction(pred, out, stem, extra={"input": str(path)})
            if summary["overlays"]:
                try:
                    save_overlay(out / f"{stem}.png", item.image, pred)
                except RendererUnavailable as exc:
                    summary["overlays"] = False
                    log(f"warning: no overlays (the renderer is unavailable: {exc}); meshes and JSON are written")
            summary["written"].append((str(path), stem))
            if pred.K_source == "assumed-fov":
                summary["assumed_K"].append(str(path))
            elif pred.K_source == "exif":
                summary["exif_K"].append(str(path))
            if pred.mode == "failed":
                summary["registration_failed"].append(str(path))
                log(f"warning: '{path}': the root could not be registered (no usable 2D keypoints nor "
                    "silhouette); the mesh is placed 0.6 m ahead as a placeholder")
        bar.update(len(chunk))
    bar.close()
    return summary
