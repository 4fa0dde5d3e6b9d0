"""handrecon: camera-space 3D hand mesh recovery from a single RGB image.

Subpackages: ``handrecon.hand`` (open hand model, MANO loading), ``handrecon.mesh`` (topology, spirals,
mesh files), ``handrecon.render`` (previews). See README.md.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
