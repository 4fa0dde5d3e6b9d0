"""Topology of a template mesh (hierarchy, down/up-sampling, spirals) and mesh file export.

>>> from handrecon.mesh import load_topology
>>> topo = load_topology(hand)            # bundled asset for the open hand, else built once and cached
>>> topo.num_vertices                     # [778, 389, 195, 98, 49]
>>> topo.spiral(0, 9)                     # LongTensor (778, 9), row i starts with i
>>> topo.down[0], topo.up[0]              # sparse (389, 778) and (778, 389)
"""

from .export import save_mesh
from .spiral import spiral_sequence
from .topology import (
    Topology,
    build_topology,
    load_topology,
    load_topology_file,
    reconstruction_errors,
    save_topology,
)

__all__ = [
    "Topology",
    "build_topology",
    "load_topology",
    "load_topology_file",
    "reconstruction_errors",
    "save_mesh",
    "save_topology",
    "spiral_sequence",
]
