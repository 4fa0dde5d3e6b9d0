"""Writing triangle meshes to OBJ, PLY or GLB files (through trimesh), atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from handrecon.fileio import atomic_path

__all__ = ["MESH_SUFFIXES", "save_mesh"]

#: File suffixes :func:`save_mesh` writes, and the trimesh format of each.
MESH_SUFFIXES = {".obj": "obj", ".ply": "ply", ".glb": "glb"}


def _array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array or tensor: {exc}") from exc


def _check_colors(vertex_colors, num_vertices: int) -> np.ndarray:
    c = _array(vertex_colors, "vertex_colors")
    if c.ndim != 2 or c.shape[0] != num_vertices or c.shape[1] not in (3, 4):
        raise ValueError(
            f"vertex_colors must have shape ({num_vertices}, 3) or ({num_vertices}, 4), "
            f"got {tuple(c.shape)}"
        )
    if np.issubdtype(c.dtype, np.floating):
        if not np.isfinite(c).all():
            raise ValueError("vertex_colors must be finite (found NaN or inf)")
        if c.min() < 0.0 or c.max() > 1.0:
            raise ValueError("float vertex_colors must lie in [0, 1]")
        c = np.round(c * 255.0).astype(np.uint8)
    elif np.issubdtype(c.dtype, np.integer) or c.dtype == np.bool_:
        if c.min() < 0 or c.max() > 255:
            raise ValueError("integer vertex_colors must lie in [0, 255]")
        c = c.astype(np.uint8)
    else:
        raise ValueError(f"vertex_colors must be floats in [0, 1] or integers in [0, 255], got {c.dtype}")
    if c.shape[1] == 3:
        c = np.concatenate([c, np.full((num_vertices, 1), 255, dtype=np.uint8)], axis=1)
    return c


def save_mesh(path, vertices, faces, vertex_colors=None) -> Path:
    """Write a triangle mesh; the format follows the suffix of ``path`` (.obj, .ply or .glb).

    The file is written to a temporary name beside ``path`` (same suffix) and renamed onto it, so an
    interrupted write never leaves a half-written file. Missing parent folders are created.

    Args:
        path: destination file, ending in .obj, .ply or .glb (any case).
        vertices: (V, 3) float array or tensor, finite.
        faces: (F, 3) integer array or tensor, indices in [0, V).
        vertex_colors: optional (V, 3) or (V, 4) RGB(A): floats in [0, 1] or integers in [0, 255].

    Returns:
        The path written.

    Raises:
        ValueError: on an unknown suffix, bad shapes, NaN/inf vertices or out-of-range faces or colours.
    """
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ValueError(f"path must end in one of {sorted(MESH_SUFFIXES)}, got {str(path)!r}")
    v = _array(vertices, "vertices")
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"vertices must have shape (V, 3) with V > 0, got {tuple(v.shape)}")
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise ValueError(f"vertices must hold real numbers, got dtype {v.dtype}")
    v = v.astype(np.float64)
    if not np.isfinite(v).all():
        raise ValueError("vertices must be finite (found NaN or inf)")
    f = _array(faces, "faces")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(f.shape)}")
    if f.size and not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got dtype {f.dtype}")
    f = f.astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces must index vertices in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    colors = None if vertex_colors is None else _check_colors(vertex_colors, len(v))

    mesh = trimesh.Trimesh(vertices=v, faces=f, vertex_colors=colors, process=False)
    with atomic_path(path, suffix=suffix) as tmp:
        mesh.export(tmp, file_type=MESH_SUFFIXES[suffix])
    return path
