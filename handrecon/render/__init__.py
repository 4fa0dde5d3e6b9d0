"""Rendering: a headless moderngl (EGL) rasteriser for RGB, silhouettes and depth, overlays of meshes and
keypoints on images, and matplotlib previews of meshes and contact sheets.

>>> from handrecon.render import Renderer, Mesh
>>> result = Renderer(224, 224).render([Mesh(vertices, faces)], K)   # camera-space metres, pinhole K
>>> result.rgb, result.ids, result.depth, result.mask(0)
"""

from handrecon.render.overlay import FINGER_COLORS, WRIST_COLOR, draw_keypoints, overlay_mesh, side_view
from handrecon.render.plot import contact_sheet, plot_mesh
from handrecon.render.renderer import (
    DEFAULT_LIGHTING,
    SKIN,
    Light,
    Lighting,
    Mesh,
    Renderer,
    RendererUnavailable,
    RenderResult,
    cavity_occlusion,
    projection_from_K,
    vertex_normals,
)

__all__ = [
    "DEFAULT_LIGHTING",
    "FINGER_COLORS",
    "Light",
    "Lighting",
    "Mesh",
    "RenderResult",
    "Renderer",
    "RendererUnavailable",
    "SKIN",
    "WRIST_COLOR",
    "cavity_occlusion",
    "contact_sheet",
    "draw_keypoints",
    "overlay_mesh",
    "plot_mesh",
    "projection_from_K",
    "side_view",
    "vertex_normals",
]
