"""Camera intrinsics for images in the wild: given, read from EXIF, or assumed.

A camera-space mesh needs the image's ``K``: the root's depth scales with the focal length (a hand of a given
size looks the same at depth ``z`` with focal ``f`` as at ``2z`` with ``2f``). Three sources, best first:

1. **given**: ``--K fx,fy,cx,cy`` / a JSON file (:func:`parse_intrinsics`) or ``K=`` in the Python API.
2. **exif**: a JPEG's EXIF focal length (:func:`exif_intrinsics`): ``FocalLengthIn35mmFilm`` (tag 0xA405),
   else ``FocalLength`` (0x920A) with ``FocalPlaneXResolution`` (0xA20E) / ``FocalPlaneResolutionUnit``
   (0xA210). The principal point is the image centre.
3. **assumed-fov**: a lens of :data:`ASSUMED_FOCAL_35MM` (26 mm) 35 mm-equivalent focal length
   (:func:`assumed_intrinsics`), the main camera of most phones (24-28 mm) and close to typical webcams
   (about 78 degrees diagonal). That is a diagonal field of view of 79.5 degrees: 67 degrees horizontal on a
   4:3 landscape image, 72 degrees on 16:9, 61 degrees on a square image. Absolute depth (the root's z) is
   then only as good as that guess; a cropped or zoomed image breaks it entirely.

35 mm-equivalent focal lengths are converted on the diagonal (the definition of the crop factor):
``f_px = f35 * diagonal_px / 43.27`` (43.27 mm = the diagonal of a 36x24 mm frame), which is
``f35 / 36 * width`` for 3:2 images and keeps the field of view of 4:3 and 16:9 images right as well.

The EXIF reader is small on purpose (OpenCV, our image reader, does not expose EXIF and Pillow is not a
dependency): it walks the JPEG's APP1 segment, the TIFF IFD0 and the Exif sub-IFD, reads the few tags above
and returns None on anything unexpected; it never raises on odd data.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from handrecon.camera import check_intrinsics, intrinsics_from_fov

__all__ = [
    "ASSUMED_FOCAL_35MM",
    "FULL_FRAME_DIAGONAL_MM",
    "K_SOURCES",
    "assumed_intrinsics",
    "intrinsics_from_35mm",
    "exif_focal",
    "exif_intrinsics",
    "image_header_size",
    "parse_intrinsics",
    "as_intrinsics",
]

#: 35 mm-equivalent focal length (mm) assumed when an image brings no intrinsics (see the module docstring).
ASSUMED_FOCAL_35MM = 26.0
#: Diagonal of a 36 x 24 mm frame.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
#: Values of ``Prediction.K_source``.
K_SOURCES = ("given", "exif", "assumed-fov")

# A focal length outside [_MIN_F, _MAX_F] x the longer image side is treated as broken EXIF (a 180-degree
# fisheye has about 0.3, a 600 mm telephoto on a full-frame camera about 17).
_MIN_F, _MAX_F = 0.15, 40.0


def intrinsics_from_35mm(focal_35mm: float, width: int, height: int) -> np.ndarray:
    """(3,3) K with square pixels and the principal point at the image centre for a lens of ``focal_35mm``
    millimetres 35 mm-equivalent focal length: ``f_px = focal_35mm * hypot(W, H) / 43.27``."""
    if not (isinstance(focal_35mm, (int, float, np.floating, np.integer)) and math.isfinite(focal_35mm)
            and focal_35mm > 0):
        raise ValueError(f"focal_35mm must be a positive number, got {focal_35mm!r}")
    width, height = int(width), int(height)
    f = float(focal_35mm) * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
    fov = math.degrees(2.0 * math.atan(0.5 * width / f))  # intrinsics_from_fov takes the horizontal FOV
    K = intrinsics_from_fov(fov, width, height)
    K[0, 0] = K[1, 1] = f  # exact (no round trip through the angle)
    return K


def assumed_intrinsics(width: int, height: int) -> np.ndarray:
    """(3,3) K assumed for an image without known intrinsics: :data:`ASSUMED_FOCAL_35MM` equivalent."""
    return intrinsics_from_35mm(ASSUMED_FOCAL_35MM, width, height)


# ---------------------------------------------------------------------------------------------------------
# EXIF
# ---------------------------------------------------------------------------------------------------------
_TAG_EXIF_IFD = 0x8769
_TAG_FOCAL = 0x920A
_TAG_FOCAL_35 = 0xA405
_TAG_FP_XRES = 0xA20E
_TAG_FP_UNIT = 0xA210
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8, 11: 4, 12: 8}
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # FocalPlaneResolutionUnit: inch, cm, mm, micrometre


def _jpeg_segments(data: bytes):
    """Yield (marker, payload) of a JPEG's header segments up to the start of scan."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no more header segments
            return
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2 or i + 2 + length > len(data):
            return
        yield marker, data[i + 4:i + 2 + length]
        i += 2 + length


def _read_ifd(tiff: bytes, offset: int, endian: str) -> dict:
    """{tag: value} of one IFD: numbers (SHORT, LONG, RATIONAL) as float; other types skipped."""
    out = {}
    if offset < 8 or offset + 2 > len(tiff):
        return out
    (count,) = struct.unpack(endian + "H", tiff[offset:offset + 2])
    for k in range(min(count, 512)):
        e = offset + 2 + 12 * k
        if e + 12 > len(tiff):
            break
        tag, typ, n = struct.unpack(endian + "HHI", tiff[e:e + 8])
        size = _TYPE_SIZES.get(typ)
        if size is None or n < 1:
            continue
        if size * n <= 4:
            where = e + 8
        else:
            (where,) = struct.unpack(endian + "I", tiff[e + 8:e + 12])
        if where + size > len(tiff):
            continue
        raw = tiff[where:where + size]
        if typ == 3:
            value = struct.unpack(endian + "H", raw)[0]
        elif typ == 4:
            value = struct.unpack(endian + "I", raw)[0]
        elif typ in (5, 10):
            num, den = struct.unpack(endian + ("II" if typ == 5 else "ii"), raw)
            if den == 0:
                continue
            value = num / den
        else:
            continue
        out[tag] = float(value)
    return out


def exif_focal(data: bytes) -> dict | None:
    """The focal-length tags of a JPEG's EXIF, or None (not a JPEG, no EXIF, malformed).

    Returns a dict with any of ``focal_35mm``, ``focal_mm``, ``focal_plane_x_res`` (pixels per
    ``focal_plane_unit_mm`` millimetres), ``pixel_x``, ``pixel_y`` (the image size the camera wrote).
    """
    try:
        for marker, payload in _jpeg_segments(data):
            if marker != 0xE1 or not payload.startswith(b"Exif\x00\x00"):
                continue
            tiff = payload[6:]
            if tiff[:4] == b"II*\x00":
                endian = "<"
            elif tiff[:4] == b"MM\x00*":
                endian = ">"
            else:
                continue
            (ifd0,) = struct.unpack(endian + "I", tiff[4:8])
            tags = _read_ifd(tiff, ifd0, endian)
            if _TAG_EXIF_IFD in tags:
                tags.update(_read_ifd(tiff, int(tags[_TAG_EXIF_IFD]), endian))
            out = {}
            for tag, key in ((_TAG_FOCAL_35, "focal_35mm"), (_TAG_FOCAL, "focal_mm"),
                             (_TAG_FP_XRES, "focal_plane_x_res"), (_TAG_PIXEL_X, "pixel_x"),
                             (_TAG_PIXEL_Y, "pixel_y")):
                if tag in tags and math.isfinite(tags[tag]) and tags[tag] > 0:
                    out[key] = tags[tag]
            unit = _UNIT_MM.get(int(tags.get(_TAG_FP_UNIT, 2)))  # the standard's default unit is the inch
            if unit is not None:
                out["focal_plane_unit_mm"] = unit
            if out:
                return out
    except (struct.error, ValueError, OverflowError, IndexError):
        return None
    return None


def exif_intrinsics(data: bytes, width: int, height: int) -> np.ndarray | None:
    """(3,3) K from the EXIF focal length of JPEG bytes ``data`` whose decoded image is ``width`` x ``height``,
    or None when the EXIF holds no usable focal length. Principal point at the image centre."""
    tags = exif_focal(data)
    if not tags:
        return None
    longest = max(width, height)
    f = None
    if "focal_35mm" in tags:
        f = tags["focal_35mm"] * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
    elif "focal_mm" in tags and "focal_plane_x_res" in tags and "focal_plane_unit_mm" in tags:
        f = tags["focal_mm"] * tags["focal_plane_x_res"] / tags["focal_plane_unit_mm"]  # pixels of the sensor
        written = max(tags.get("pixel_x", 0.0), tags.get("pixel_y", 0.0))
        if written > 0:  # the image was saved at another size than the sensor's pixel grid (or resized later)
            f *= longest / written
    if f is None or not math.isfinite(f) or not _MIN_F * longest <= f <= _MAX_F * longest:
        return None
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's SOF or a PNG's IHDR without decoding the pixels; None otherwise."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return int(h), int(w)
        for marker, payload in _jpeg_segments(data):
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", payload[1:5])
                return int(h), int(w)
    except (struct.error, ValueError):
        return None
    return None


# ---------------------------------------------------------------------------------------------------------
# K from users
# ---------------------------------------------------------------------------------------------------------
def as_intrinsics(K, name: str = "K") -> np.ndarray:
    """(3,3) float64 K from a 3x3 array / nested list or 4 numbers ``(fx, fy, cx, cy)``; ValueError naming
    ``name`` otherwise (wrong shape, NaN, non-positive focal lengths, last row not (0,0,1))."""
    if hasattr(K, "detach"):
        K = K.detach().cpu().numpy()
    try:
        a = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 3x3 matrix or 4 numbers (fx, fy, cx, cy), got {K!r}") from None
    if a.shape == (4,):
        fx, fy, cx, cy = a
        a = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    elif a.shape == (9,):
        a = a.reshape(3, 3)
    if a.shape != (3, 3):
        raise ValueError(f"{name} must be a 3x3 matrix or 4 numbers (fx, fy, cx, cy), got shape {a.shape}")
    return check_intrinsics(a, name).copy()


def parse_intrinsics(text: str, name: str = "--K") -> np.ndarray:
    """K from a command-line value: ``fx,fy,cx,cy`` (or 9 numbers, row-major), or a JSON file holding a 3x3
    list, ``{"fx", "fy", "cx", "cy"}`` or ``{"K": 3x3}``. ValueError naming ``name`` on anything else."""
    text = str(text).strip()
    path = Path(text)
    if path.is_file() or text.lower().endswith(".json"):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{name}: file not found: '{path}'") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: '{path}' is not a readable JSON file ({exc})") from None
        if isinstance(obj, dict):
            if "K" in obj:
                obj = obj["K"]
            elif all(k in obj for k in ("fx", "fy", "cx", "cy")):
                obj = [obj["fx"], obj["fy"], obj["cx"], obj["cy"]]
            else:
                raise ValueError(f"{name}: '{path}' must hold a 3x3 list, {{\"K\": 3x3}} or "
                                 "{\"fx\", \"fy\", \"cx\", \"cy\"}")
        try:
            return as_intrinsics(obj, f"{name} ({path})")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    try:
        values = [float(x) for x in text.replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name} must be fx,fy,cx,cy (pixels) or a JSON file, got {text!r}") from None
    if len(values) not in (4, 9):
        raise ValueError(f"{name} must be 4 numbers fx,fy,cx,cy (or 9, a row-major 3x3) or a JSON file, "
                         f"got {len(values)} numbers")
    return as_intrinsics(values, name)
