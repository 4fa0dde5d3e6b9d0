"""Rendering: matplotlib previews of meshes and contact sheets (a headless GL renderer comes later)."""

from handrecon.render.plot import contact_sheet, plot_mesh

__all__ = ["contact_sheet", "plot_mesh"]
