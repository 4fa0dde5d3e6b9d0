"""File reading shared by the dataset readers: JSON label lists, images, masks; errors name the file."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from handrecon.data.sample import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg")

# Label files above this size are parsed with a streaming numeric parser instead of ``json.load`` (which
# would build tens of millions of Python floats for FreiHAND's ``training_verts.json``).
FAST_JSON_BYTES = 32 * 1024 * 1024


def require_file(path, what: str) -> Path:
    """``path`` as a Path; FileNotFoundError naming it and ``what`` was expected there if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: '{path}'")
    return path


def read_json(path, what: str):
    path = require_file(path, what)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); expected {what}", path) from None


def _item_brackets(shape: tuple) -> int:
    """Number of '[' in the JSON text of one nested list of ``shape``."""
    total, prod = 0, 1
    for s in shape[:-1] if shape else ():
        total += prod
        prod *= s
    return total + prod if shape else 0


def _parse_numbers(text: bytes, path) -> np.ndarray:
    if not text.strip():
        return np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text.decode("ascii"), dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning, UnicodeDecodeError):
            values = None
    if values is None or len(values) != text.count(b",") + 1:
        raise DatasetError(f"{path}: expected a JSON list of numeric arrays, found non-numeric content", path)
    return values


def _load_numbers_streaming(path, item_shape: tuple, what: str) -> np.ndarray:
    table = bytes.maketrans(b"[]", b"  ")
    parts, tail, brackets = [], b"", 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 26)
            if not block:
                break
            brackets += block.count(b"[")
            data = tail + block.translate(table)
            cut = data.rfind(b",")
            if cut < 0:
                tail = data
                continue
            parts.append(_parse_numbers(data[:cut], path))
            tail = data[cut + 1:]
    parts.append(_parse_numbers(tail, path))
    values = np.concatenate(parts)
    per_item = int(np.prod(item_shape)) if item_shape else 1
    n = len(values) // per_item if per_item else 0
    if len(values) != n * per_item or brackets != 1 + n * _item_brackets(item_shape):
        raise DatasetError(f"{path}: expected {what} as a JSON list of items of shape {item_shape}; the "
                           f"nesting or the number of values ({len(values)}) does not match", path)
    return values.reshape((n,) + tuple(item_shape))


def load_array_list(path, item_shape: tuple, what: str, expected_len: int | None = None,
                    dtype=np.float32, fast_bytes: int = FAST_JSON_BYTES) -> np.ndarray:
    """A JSON list of equally shaped numeric items -> array (N, *item_shape).

    Items of one extra singleton level (FreiHAND's ``[[61 values]]`` MANO entries) are accepted when
    ``item_shape`` lacks it. Raises FileNotFoundError / DatasetError naming the file, the item and the
    expected shape or length.
    """
    path = require_file(path, what)
    item_shape = tuple(item_shape)
    if os.path.getsize(path) > fast_bytes:
        try:
            arr = _load_numbers_streaming(path, item_shape, what)
        except DatasetError:
            arr = _load_numbers_streaming(path, (1,) + item_shape, what)[:, 0]
    else:
        data = read_json(path, what)
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected {what} as a JSON list, got {type(data).__name__}", path)
        items = []
        for i, item in enumerate(data):
            try:
                a = np.asarray(item, dtype=np.float64)
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: item {i} is not a numeric array; expected shape {item_shape}",
                                   path) from None
            if a.shape != item_shape and a.shape == (1,) + item_shape:
                a = a[0]
            if a.shape != item_shape:
                raise DatasetError(f"{path}: item {i} has shape {a.shape}; expected {item_shape} ({what})", path)
            items.append(a)
        arr = np.stack(items) if items else np.zeros((0,) + item_shape)
    if not np.all(np.isfinite(arr)):
        bad = int(np.nonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(1))[0][0])
        raise DatasetError(f"{path}: item {bad} contains NaN or inf", path)
    if expected_len is not None and len(arr) != expected_len:
        raise DatasetError(f"{path}: holds {len(arr)} items; expected {expected_len} ({what})", path)
    return arr.astype(dtype, copy=False)


def find_image(folder, stem: str) -> Path | None:
    folder = Path(folder)
    for ext in IMAGE_EXTENSIONS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def read_image(path) -> np.ndarray:
    """uint8 (H, W, 3) RGB."""
    path = require_file(path, "image")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: not a readable image", path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label_image(path) -> np.ndarray:
    """A single-channel label image as stored (e.g. RHD part labels), uint8/uint16 (H, W)."""
    path = require_file(path, "mask image")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: not a readable image", path)
    if img.ndim == 3:
        img = img[..., 0]
    return img


def read_binary_mask(path, threshold: int = 128) -> np.ndarray:
    """uint8 (H, W) 0/1 from a grey or colour mask image (JPEG artefacts tolerated by ``threshold``)."""
    path = require_file(path, "mask image")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DatasetError(f"{path}: not a readable image", path)
    return (img >= threshold).astype(np.uint8)
