"""Shaded mesh previews with matplotlib: no GPU or GL context needed, good for docs and demos.

Views are given as (yaw, pitch) in degrees around the hand model's own frame: (0, 0) looks at the back of
a right hand with the fingers up; yaw 180 shows the palm.
"""

from __future__ import annotations

import numpy as np

from handrecon.fileio import atomic_path

__all__ = ["plot_mesh", "contact_sheet", "view_rotation", "VIEWS"]

SKIN = np.array([0.93, 0.74, 0.62])
VIEWS = {"back": (0.0, 0.0), "palm": (180.0, 0.0), "three_quarter": (35.0, 25.0), "side": (90.0, 10.0)}

# Model frame (fingers -x, back of hand +y, thumb +z) -> screen frame (x right, y up, z to the viewer).
_MODEL_TO_SCREEN = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def view_rotation(yaw: float, pitch: float) -> np.ndarray:
    """(3,3) rotation from the model frame to the screen frame for a (yaw, pitch) view in degrees."""
    y, p = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry @ _MODEL_TO_SCREEN


def _as_numpy(x, name, shape):
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if a.ndim != 2 or a.shape[1] != shape:
        raise ValueError(f"{name} must have shape (N,{shape}), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def plot_mesh(ax, vertices, faces, view=(0.0, 0.0), color=SKIN, radius=None, centre=None):
    """Draw a head-lit, shaded mesh (vertices (V,3), faces (F,3)) on a 3D matplotlib axis."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    v = _as_numpy(vertices, "vertices", 3) @ view_rotation(*view).T
    f = _as_numpy(faces, "faces", 3).astype(np.int64)
    tri = v[f]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    shade = 0.3 + 0.7 * np.clip(normals[:, 2], 0.0, 1.0)  # light from the viewer
    ax.add_collection3d(Poly3DCollection(tri, facecolors=np.clip(shade[:, None] * color, 0, 1),
                                         edgecolors=(0, 0, 0, 0.1), linewidths=0.2))
    c = (v.max(0) + v.min(0)) / 2 if centre is None else centre
    r = radius if radius is not None else (v.max(0) - v.min(0)).max() / 2
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=90, azim=-90)  # look down +z with x right, y up: an orthographic-like screen view
    ax.set_proj_type("ortho")
    ax.axis("off")


def contact_sheet(path, meshes, faces, titles=None, views=("back", "palm"), cell=2.6):
    """Write a PNG grid: one row per mesh, one column per view (names of :data:`VIEWS` or (yaw, pitch))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(meshes) == 0:
        raise ValueError("meshes must hold at least one (V,3) array")
    views = [VIEWS[v] if isinstance(v, str) else tuple(v) for v in views]
    fig = plt.figure(figsize=(cell * len(views), cell * len(meshes)))
    radius = 0.55 * max(np.ptp(np.asarray(m), axis=0).max() for m in meshes)
    for i, mesh in enumerate(meshes):
        for j, view in enumerate(views):
            ax = fig.add_subplot(len(meshes), len(views), i * len(views) + j + 1, projection="3d")
            plot_mesh(ax, mesh, faces, view, radius=radius)
            if titles is not None and j == 0:
                ax.text2D(0.02, 0.92, titles[i], transform=ax.transAxes, fontsize=10)
    fig.subplots_adjust(0, 0, 1, 1, 0, 0)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
