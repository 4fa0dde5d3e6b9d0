"""Builder of the open hand model: geometry, skeleton, skinning weights, shape space, regressors.

The open hand is designed, not scanned. A right hand in a flat rest pose is described as a signed-distance
field (palm, metacarpals, thenar and hypothenar pads, phalanges with flatter nail sides and palm-side pads,
smoothly blended), meshed by marching cubes, decimated to MANO's 778 vertices, relaxed and rigged:

* skeleton: 16 joints in MANO's kinematic order at anatomical positions;
* skinning: per-finger partitions of unity along each finger's axis, blended across fingers by proximity,
  so weights are smooth (no candy-wrapper collapse) and never bleed from one finger to its neighbour;
* shape space: 10 linear, named displacement fields, one unit = one standard deviation of adult variation;
* regressors: joints from rings of vertices around each joint (rows sum to 1), fingertips = single vertices.

Everything is deterministic; ``scripts/build_open_hand.py`` runs :func:`build_open_hand` and writes the
bundled asset. Units inside the design are centimetres in a hand frame (a: towards the fingers,
b: towards the thumb, c: out of the back of the hand); the result is in metres in the model frame
(fingers along -x, back of the hand along +y, thumb along +z; the same layout as MANO's right hand).

Marching cubes needs scikit-image (``pip install handrecon[build]``); nothing else here does.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import scipy.optimize

from handrecon.hand.keypoints import FINGER_JOINTS, FINGERS, JOINT_PARENTS, NUM_JOINTS
from handrecon.hand.poses import joint_frames

__all__ = ["build_open_hand", "OpenHandAssets", "BUILDER_VERSION", "DESIGN_TO_MODEL"]

BUILDER_VERSION = "1"

# Columns are the model-frame images of the design axes a, b, c (a proper rotation: det = +1).
DESIGN_TO_MODEL = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])

# Fingertip vertex indices, as in MANO (thumb, index, middle, ring, little), so that code written for
# MANO's tips works unchanged on the open hand.
TIP_VERTEX_IDS = (744, 320, 443, 555, 672)

NUM_VERTICES = 778


# ----------------------------------------------------------------------------------------------------
# Design: the skeleton and the flesh around it (centimetres, design frame)
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FingerDesign:
    base: tuple  # MCP (or thumb CMC) joint centre
    angle: float  # direction in the a-b plane, degrees towards the thumb
    tilt: float  # direction out of the palm plane, degrees towards the palm (negative c)
    lengths: tuple  # three segment lengths; the last one reaches the tip of the pulp
    width: tuple  # half-width at the four stations (base, joint 2, joint 3, tip)
    dorsal: tuple  # half-thickness towards the nail side at the four stations
    palmar: tuple  # half-thickness towards the palm side at the four stations
    roll: float = 0.0  # rotation of the cross-section about the finger axis, degrees towards +b


FINGER_DESIGN = {
    "index": FingerDesign((9.0, 2.6, 0.0), 5.0, 0.0, (3.9, 2.3, 2.15),
                          (1.0, 0.88, 0.8, 0.7), (0.84, 0.73, 0.64, 0.53), (0.92, 0.84, 0.71, 0.66)),
    "middle": FingerDesign((9.35, 0.45, 0.0), 0.5, 0.0, (4.3, 2.75, 2.3),
                           (1.02, 0.91, 0.82, 0.72), (0.86, 0.75, 0.66, 0.55), (0.94, 0.86, 0.73, 0.68)),
    "ring": FingerDesign((8.95, -1.6, 0.0), -4.5, 0.0, (4.05, 2.6, 2.2),
                         (0.96, 0.85, 0.77, 0.68), (0.81, 0.7, 0.62, 0.52), (0.9, 0.81, 0.68, 0.64)),
    "little": FingerDesign((8.2, -3.55, 0.0), -11.0, 0.0, (3.25, 1.95, 1.95),
                           (0.85, 0.75, 0.67, 0.6), (0.72, 0.62, 0.55, 0.47), (0.79, 0.7, 0.6, 0.56)),
    "thumb": FingerDesign((1.9, 1.75, -0.55), 36.0, 10.0, (4.3, 3.1, 2.75),
                          (1.3, 1.1, 1.02, 0.9), (1.1, 0.9, 0.82, 0.66), (1.3, 1.02, 0.9, 0.82),
                          roll=65.0),
}


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def finger_frame(design: FingerDesign):
    """Axis ``u`` (base to tip), nail-side normal ``n`` and lateral ``l`` (towards +b) of a straight finger."""
    ang, tilt = np.radians(design.angle), np.radians(design.tilt)
    u = np.array([np.cos(ang) * np.cos(tilt), np.sin(ang) * np.cos(tilt), -np.sin(tilt)])
    c = np.array([0.0, 0.0, 1.0])
    n0 = _unit(c - u * (u @ c))
    l0 = np.cross(u, n0)  # a x b = c frame: u x n points to -b for a finger along +a; flip below
    l0 = -l0
    roll = np.radians(design.roll)
    n = np.cos(roll) * n0 + np.sin(roll) * l0
    lat = np.cross(n, u)  # completes (u, lat, n) so that lat ~ +b at roll 0
    return u, n, lat


def finger_stations(design: FingerDesign):
    """(4,3) joint centres base, joint 2, joint 3 and tip of the pulp (design frame, cm)."""
    u, _, _ = finger_frame(design)
    lengths = np.cumsum((0.0,) + tuple(design.lengths))
    return np.asarray(design.base, float)[None] + lengths[:, None] * u[None]


# ----------------------------------------------------------------------------------------------------
# Signed distance field of the flesh
# ----------------------------------------------------------------------------------------------------
def _smin(a, b, k):
    """Polynomial smooth minimum: blends two distance fields over a band of width ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _segment_field(p, p0, p1, frame, width, dorsal, palmar, pad=0.0, nail_power=2.0):
    """Approximate signed distance to a tapered segment with an asymmetric, padded cross-section.

    ``p`` (N,3); ``p0``, ``p1`` ends; ``frame`` = (u, n, lat) with ``u`` along the segment; the three radii
    are pairs (at p0, at p1). Palm-side thickness swells by ``pad`` mid-segment (finger pads, creases at
    the joints); the nail side is a superellipse of power ``nail_power`` (flatter than a circle).
    """
    u, n, lat = frame
    length = np.linalg.norm(p1 - p0)
    d = p - p0
    s = d @ u
    t = np.clip(s / length, 0.0, 1.0)
    along = s - t * length  # zero inside the segment, signed overshoot beyond its ends
    x = d @ lat
    y = d @ n
    rx = width[0] + (width[1] - width[0]) * t
    rd = dorsal[0] + (dorsal[1] - dorsal[0]) * t
    rp = (palmar[0] + (palmar[1] - palmar[0]) * t) * (1.0 + pad * np.sin(np.pi * t))
    ry = np.where(y > 0, rd, rp)
    power = np.where(y > 0, nail_power, 2.0)
    rz = np.minimum(rx, ry)
    q = (np.abs(x) / rx) ** power + (np.abs(y) / ry) ** power + (np.abs(along) / rz) ** power
    return (q ** (1.0 / power) - 1.0) * rz


def _ellipsoid_field(p, centre, axes, radii):
    """Approximate signed distance to an ellipsoid with orthonormal ``axes`` (3,3 rows) and ``radii``."""
    local = (p - centre) @ np.asarray(axes).T
    q = np.sqrt(((local / radii) ** 2).sum(-1))
    return (q - 1.0) * np.min(radii)


def _rounded_box_field(p, centre, half, radius):
    q = np.abs(p - centre) - (np.asarray(half) - radius)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(q.max(-1), 0.0)
    return outside + inside - radius


def hand_field(p: np.ndarray) -> np.ndarray:
    """Signed distance (cm, approximate, negative inside) of the open hand's rest-pose flesh at ``p`` (N,3)."""
    c_axis = np.array([0.0, 0.0, 1.0])
    # Wrist stub and palm body.
    wrist = _segment_field(p, np.array([-1.8, -0.2, 0.0]), np.array([1.2, -0.2, 0.0]),
                           (np.array([1.0, 0, 0]), c_axis, np.array([0, 1.0, 0])),
                           (2.45, 2.6), (1.35, 1.25), (1.45, 1.45))
    palm = _rounded_box_field(p, np.array([5.0, -0.35, -0.2]), (3.6, 2.75, 0.95), 0.85)
    # Metacarpals fan out from the carpus to the knuckles; their dorsal ends make the knuckle bumps.
    body = _smin(wrist, palm, 1.2)
    for name in ("index", "middle", "ring", "little"):
        design = FINGER_DESIGN[name]
        mcp = np.asarray(design.base, float)
        start = np.array([1.6, 0.35 * mcp[1], 0.15])
        u = _unit(mcp - start)
        n = _unit(c_axis - u * (u @ c_axis))
        meta = _segment_field(p, start, mcp, (u, n, np.cross(n, u)),
                              (0.95, 1.0), (0.9, 1.0), (1.25, 1.35))
        body = _smin(body, meta, 1.0)
    # Thenar and hypothenar eminences on the palm side.
    th_dir = _unit(np.array([np.cos(np.radians(35)), np.sin(np.radians(35)), 0.0]))
    th_axes = np.stack([th_dir, np.cross(c_axis, th_dir), c_axis])
    thenar = _ellipsoid_field(p, np.array([3.2, 1.85, -0.75]), th_axes, np.array([2.9, 1.45, 1.15]))
    hypo_axes = np.eye(3)
    hypothenar = _ellipsoid_field(p, np.array([4.3, -2.7, -0.55]), hypo_axes, np.array([3.4, 1.15, 1.05]))
    body = _smin(body, thenar, 0.9)
    body = _smin(body, hypothenar, 0.9)
    # Digits: each phalanx a padded segment; the nail side of the last one is flatter.
    fingers = None
    for name in FINGERS:
        design = FINGER_DESIGN[name]
        frame = finger_frame(design)
        st = finger_stations(design)
        digit = None
        for k in range(3):
            end = st[k + 1] if k < 2 else st[3] - frame[0] * design.width[3] * 0.85
            seg = _segment_field(
                p, st[k], end, frame,
                (design.width[k], design.width[k + 1]),
                (design.dorsal[k], design.dorsal[k + 1]),
                (design.palmar[k], design.palmar[k + 1]),
                pad=0.10 if name != "thumb" or k > 0 else 0.0,
                nail_power=2.8 if k == 2 else 2.3,
            )
            digit = seg if digit is None else _smin(digit, seg, 0.25)
        if name == "thumb":
            body = _smin(body, digit, 0.9)  # the thumb's metacarpal is inside the thenar mass
            # The first web space: a thin membrane from the thumb's MCP to the index finger's base.
            web_end = np.array([7.2, 2.3, -0.25])
            web_start = st[1] - 0.4 * frame[0]
            wu = _unit(web_end - web_start)
            wn = _unit(np.array([0.0, 0.0, 1.0]) - wu * wu[2])
            web = _segment_field(p, web_start, web_end, (wu, wn, np.cross(wn, wu)),
                                 (0.9, 1.1), (0.35, 0.45), (0.45, 0.55))
            body = _smin(body, web, 0.8)
        else:
            fingers = digit if fingers is None else np.minimum(fingers, digit)
    # Webs between the fingers reach about a third of the way up the proximal phalanges; the narrow
    # blend band rounds them without fusing neighbouring fingers.
    webs = _rounded_box_field(p, np.array([9.3, -0.45, -0.05]), (1.15, 3.0, 0.4), 0.35)
    body = _smin(body, webs, 0.6)
    return _smin(body, fingers, 0.55)


# ----------------------------------------------------------------------------------------------------
# Meshing
# ----------------------------------------------------------------------------------------------------
def _mesh_field(spacing: float = 0.1):
    """Marching cubes of :func:`hand_field` -> (vertices (V,3) cm, faces (F,3)), outward winding."""
    try:
        from skimage.measure import marching_cubes
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("building the open hand needs scikit-image: pip install 'handrecon[build]'") from exc
    # The odd offset keeps grid points off the field's exact zeros (which make zero-area triangles).
    lo = np.array([-4.0, -6.4, -4.6]) + 0.0371
    hi = np.array([19.6, 11.6, 2.6])
    axes = [np.arange(lo[i], hi[i] + spacing, spacing) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    field = np.concatenate([hand_field(chunk) for chunk in np.array_split(grid.reshape(-1, 3), 64)])
    field = field.reshape(grid.shape[:3])
    verts, faces, _, _ = marching_cubes(field, level=0.0, spacing=(spacing,) * 3)
    verts = verts + lo
    import trimesh

    # Marching cubes can leave a few specks where blended fields graze zero; keep the hand itself.
    mesh = max(trimesh.Trimesh(verts, faces).split(only_watertight=False), key=lambda m: len(m.vertices))
    if not mesh.is_watertight or mesh.euler_number != 2:
        raise RuntimeError("the hand's surface is not a closed sphere-like surface; check the design")
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _decimate_exact(verts, faces, num_vertices):
    """Quadric decimation to exactly ``num_vertices`` vertices of a closed genus-0 mesh."""
    import fast_simplification
    import trimesh

    target_faces = 2 * num_vertices - 4
    for _ in range(50):
        v, f = fast_simplification.simplify(verts.astype(np.float32), faces.astype(np.int32),
                                            target_count=target_faces, agg=5)
        mesh = trimesh.Trimesh(v.astype(np.float64), f, process=True)
        closed = mesh.is_watertight and mesh.is_winding_consistent and mesh.euler_number == 2
        if len(mesh.vertices) == num_vertices and closed:
            return np.asarray(mesh.vertices), np.asarray(mesh.faces)
        # Off by a few vertices, or a non-manifold collapse: nudge the face budget and decimate again.
        target_faces -= 2 * (len(mesh.vertices) - num_vertices) if len(mesh.vertices) != num_vertices else 2
    raise RuntimeError(f"decimation could not reach exactly {num_vertices} vertices")


def _relax(verts, faces, surface, iterations=10, step=0.5):
    """Tangential Laplacian relaxation re-projected onto ``surface``: evens out triangle sizes and shapes."""
    import trimesh
    from scipy.spatial import cKDTree

    hi_res = trimesh.Trimesh(*surface, process=False)
    hi_normals = np.asarray(hi_res.vertex_normals)
    tree = cKDTree(hi_res.vertices)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    adjacency = mesh.vertex_adjacency_graph
    neighbours = [sorted(adjacency.neighbors(i)) for i in range(len(verts))]
    v = verts.copy()
    for _ in range(iterations):
        normals = trimesh.Trimesh(v, faces, process=False).vertex_normals
        centroid = np.stack([v[nb].mean(0) for nb in neighbours])
        delta = centroid - v
        delta -= (delta * normals).sum(-1, keepdims=True) * normals
        v = v + step * delta
        # Back onto the surface: the tangent plane of the nearest vertex of the dense (1 mm) mesh.
        _, nearest = tree.query(v)
        offset = ((v - hi_res.vertices[nearest]) * hi_normals[nearest]).sum(-1, keepdims=True)
        v = v - offset * hi_normals[nearest]
    return v


# ----------------------------------------------------------------------------------------------------
# Rig: skeleton, skinning weights, regressors, shape space
# ----------------------------------------------------------------------------------------------------
WRIST_CENTRE = np.array([0.0, -0.2, 0.0])

# Half-widths (cm) of the blend bands across each joint of a digit: wide at the knuckle, where the palm
# bends with the finger, narrow at the interphalangeal joints (about a finger radius).
BLEND_HALF_WIDTH = {"thumb": (1.6, 0.75, 0.55), "other": (1.4, 0.55, 0.5)}
# The knuckle band is centred a little distal of the MCP joint so that the webs between the fingers, which
# reach about a third of the way up the proximal phalanges, stay partly with the palm and stretch evenly.
MCP_BAND_SHIFT = 0.5
# Where the palm-length shape component stops stretching (cm from the wrist, about the first web space).
PALM_STRETCH_END = 6.0

# Shape space: name -> what one standard deviation does (documented in HandModel.shape_names).
SHAPE_NAMES = (
    "size", "palm_width", "palm_length", "finger_length", "thumb_length",
    "digit_thickness", "palm_thickness", "index_ring_ratio", "little_length", "fingertip_width",
)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _softplus_ramp(x, width=0.5):
    """Smooth max(x, 0)."""
    return 0.5 * (x + np.sqrt(x * x + width * width)) - 0.5 * width * (width / (np.abs(x) + width))


def _project_polyline(points, chain):
    """Arclength ``s``, distance ``d`` and closest point ``q`` of ``points`` (N,3) on polyline ``chain`` (K,3)."""
    best_d = np.full(len(points), np.inf)
    best_s = np.zeros(len(points))
    best_q = np.zeros_like(points)
    start = 0.0
    for a, b in zip(chain[:-1], chain[1:]):
        seg = b - a
        length = np.linalg.norm(seg)
        t = np.clip((points - a) @ seg / length**2, 0.0, 1.0)
        q = a + t[:, None] * seg
        d = np.linalg.norm(points - q, axis=-1)
        closer = d < best_d
        best_d[closer], best_s[closer], best_q[closer] = d[closer], start + t[closer] * length, q[closer]
        start += length
    return best_s, best_d, best_q


def _chains():
    """Per digit: polyline from its root in the palm through its three joints to the tip, joint arclengths."""
    chains = {}
    for name in FINGERS:
        design = FINGER_DESIGN[name]
        st = finger_stations(design)
        root = WRIST_CENTRE if name == "thumb" else np.array([1.6, 0.35 * design.base[1], 0.15])
        poly = np.concatenate([root[None], st])
        joint_s = np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=-1))[:3]
        chains[name] = (poly, joint_s)
    return chains


def _skinning(verts):
    """Weights (V,16), digit affinities (V,5), per-digit arclength/closest axis point, joint centres (16,3)."""
    chains = _chains()
    joints = np.zeros((NUM_JOINTS, 3))
    joints[0] = WRIST_CENTRE
    V = len(verts)
    dist = np.zeros((V, 5))
    s_all, q_all, chain_w = {}, {}, {}
    for i, name in enumerate(FINGERS):
        poly, joint_s = chains[name]
        ids = FINGER_JOINTS[name]
        joints[list(ids)] = poly[1:4]
        s, d, q = _project_polyline(verts, poly)
        # Distance to the digit proper (from just before its base joint): decides which digit owns a vertex.
        _, d_digit, _ = _project_polyline(verts, np.concatenate([poly[1:2] - 0.8 * _unit(poly[2] - poly[1]), poly[1:]]))
        dist[:, i] = d_digit
        s_all[name], q_all[name] = s, q
        widths = BLEND_HALF_WIDTH["thumb" if name == "thumb" else "other"]
        centres = joint_s + np.array([0.0 if name == "thumb" else MCP_BAND_SHIFT, 0.0, 0.0])
        h = [_smoothstep((s - js + w) / (2 * w)) for js, w in zip(centres, widths)]
        w = np.zeros((V, NUM_JOINTS))
        w[:, 0] = 1 - h[0]
        w[:, ids[0]] = h[0] - h[1]
        w[:, ids[1]] = h[1] - h[2]
        w[:, ids[2]] = h[2]
        chain_w[name] = w
    # Affinity: sharp on the digits (no bleeding into a neighbour), soft in the palm (smooth knuckle line).
    nearest = dist.argmin(1)
    on_digit = np.zeros(V)
    for i, name in enumerate(FINGERS):
        sel = nearest == i
        on_digit[sel] = chain_w[name][sel, FINGER_JOINTS[name][0]] + chain_w[name][sel][:, list(FINGER_JOINTS[name][1:])].sum(1)
    tau = 0.07 + 0.5 * (1.0 - on_digit)
    logits = -(dist - dist.min(1, keepdims=True)) / tau[:, None]
    affinity = np.exp(logits)
    affinity /= affinity.sum(1, keepdims=True)
    weights = sum(affinity[:, i:i + 1] * chain_w[name] for i, name in enumerate(FINGERS))
    weights[weights < 1e-6] = 0.0
    weights /= weights.sum(1, keepdims=True)
    return weights, affinity, s_all, q_all, joints, chains


def _ring_regressor(verts, centre, axis, candidates, band=0.35, max_dist=2.6, count=14):
    """Non-negative weights (summing to 1) on a ring of vertices around ``centre`` that reproduce it."""
    offset = verts - centre
    along = np.abs(offset @ axis)
    radial = np.linalg.norm(offset - np.outer(offset @ axis, axis), axis=-1)
    ok = candidates & (radial < max_dist)
    score = np.where(ok, along + 0.05 * radial, np.inf)
    ids = np.argsort(score, kind="stable")[:count]
    ids = ids[np.isfinite(score[ids])]
    n = len(ids)
    lam = 1e-3
    A = np.concatenate([verts[ids].T, 100.0 * np.ones((1, n)), np.sqrt(lam) * np.eye(n)])
    b = np.concatenate([centre, [100.0], np.full(n, np.sqrt(lam) / n)])
    w, _ = scipy.optimize.nnls(A, b)
    w /= w.sum()
    row = np.zeros(len(verts))
    row[ids] = w
    return row


def _shape_space(verts, weights, affinity, s_all, q_all, joints, chains):
    """(V,3,10) displacement per unit of each named shape component (cm, design frame)."""
    V = len(verts)
    root_w = weights[:, 0]
    base = np.stack([joints[FINGER_JOINTS[name][0]] for name in FINGERS])  # (5,3)
    digit_base = affinity @ base  # where each vertex's digit attaches to the palm
    dirs = np.zeros((V, 3, len(SHAPE_NAMES)))

    def length_field(names, scale):
        out = np.zeros((V, 3))
        for i, name in enumerate(FINGERS):
            if name not in names:
                continue
            poly, joint_s = chains[name]
            u = _unit(poly[-1] - poly[1])
            out += (scale[name] if isinstance(scale, dict) else scale) * affinity[:, i:i + 1] * \
                _softplus_ramp(s_all[name] - joint_s[0])[:, None] * u
        return out

    def radial_field(names, gate_joint):
        out = np.zeros((V, 3))
        for i, name in enumerate(FINGERS):
            if name not in names:
                continue
            ids = FINGER_JOINTS[name]
            gate = weights[:, list(ids[gate_joint:])].sum(1)
            out += affinity[:, i:i + 1] * gate[:, None] * (verts - q_all[name])
        return out

    fingers4 = ("index", "middle", "ring", "little")
    dirs[:, :, 0] = 0.05 * (verts - WRIST_CENTRE)
    palm_b = root_w * verts[:, 1] + (1 - root_w) * digit_base[:, 1]
    dirs[:, 1, 1] = 0.045 * palm_b
    # Palm length stretches the palm up to the first web space; beyond it everything (fingers, the far
    # palm, the thumb's distal part) moves as one, so the thumb web never folds.
    dirs[:, 0, 2] = 0.06 * np.clip(verts[:, 0], 0.0, PALM_STRETCH_END)
    dirs[:, :, 3] = length_field(fingers4, 0.06)
    dirs[:, :, 4] = length_field(("thumb",), 0.06)
    dirs[:, :, 5] = 0.05 * radial_field(FINGERS, 0)
    dirs[:, 2, 6] = 0.07 * root_w * (verts[:, 2] + 0.2)
    dirs[:, :, 7] = length_field(("index", "ring"), {"index": 0.03, "ring": -0.03})
    dirs[:, :, 8] = length_field(("little",), 0.07)
    dirs[:, :, 9] = 0.08 * radial_field(fingers4 + ("thumb",), 2)
    return dirs


@dataclasses.dataclass
class OpenHandAssets:
    """Arrays of the open hand in metres, model frame (see module docstring)."""

    v_template: np.ndarray  # (778,3)
    faces: np.ndarray  # (1552,3)
    weights: np.ndarray  # (778,16)
    joint_regressor: np.ndarray  # (16,778)
    keypoint_regressor: np.ndarray  # (21,778)
    shapedirs: np.ndarray  # (778,3,10)
    joint_frames: np.ndarray  # (16,3,3)
    parents: np.ndarray  # (16,)
    metadata: dict

    def arrays(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "metadata"}


def build_open_hand(spacing: float = 0.1, relax_iterations: int = 10) -> OpenHandAssets:
    """Build the open hand from its design. Deterministic: the same code gives the same arrays."""
    from handrecon.hand.keypoints import keypoint_regressor_from_joints

    dense_v, dense_f = _mesh_field(spacing)
    verts, faces = _decimate_exact(dense_v, dense_f, NUM_VERTICES)
    verts = _relax(verts, faces, (dense_v, dense_f), iterations=relax_iterations)

    # Fingertip vertices: the surface vertex nearest the end of each digit's axis, moved to MANO's tip
    # indices.
    chains = _chains()
    order = np.arange(NUM_VERTICES)
    for name, target in zip(FINGERS, TIP_VERTEX_IDS):
        poly, _ = chains[name]
        tip = int(np.argmin(np.linalg.norm(verts - poly[-1], axis=-1)))
        where = int(np.nonzero(order == tip)[0][0])
        order[where], order[target] = order[target], order[where]
    inverse = np.argsort(order)
    verts = verts[order]
    faces = inverse[faces]

    weights, affinity, s_all, q_all, joints, chains = _skinning(verts)

    # Joint regressor: rings of surface vertices around each joint, in the plane across its bone.
    frames = joint_frames(joints)
    owner = affinity.argmax(1)
    J_reg = np.zeros((NUM_JOINTS, NUM_VERTICES))
    J_reg[0] = _ring_regressor(verts, joints[0], np.array([1.0, 0.0, 0.0]), weights[:, 0] > 0.99, max_dist=3.0)
    for i, name in enumerate(FINGERS):
        for k, jid in enumerate(FINGER_JOINTS[name]):
            candidates = owner == i
            J_reg[jid] = _ring_regressor(verts, joints[jid], frames[jid][:, 2], candidates,
                                         max_dist=2.6 if k == 0 else 1.4)
    kp_reg = keypoint_regressor_from_joints(J_reg, TIP_VERTEX_IDS)

    shapedirs = _shape_space(verts, weights, affinity, s_all, q_all, joints, chains)

    # Design frame (cm) -> model frame (m); wrist joint at the origin.
    R = DESIGN_TO_MODEL
    to_model = lambda x: (x - WRIST_CENTRE) @ R.T * 0.01  # noqa: E731
    v_template = to_model(verts)
    shapedirs_m = np.einsum("ij,vjs->vis", R, shapedirs) * 0.01
    frames_m = np.einsum("ij,njk->nik", R, frames)
    frames_m[0] = np.eye(3)
    digest = hashlib.sha256(np.ascontiguousarray(v_template, dtype=np.float32).tobytes()
                            + np.ascontiguousarray(faces, dtype=np.int64).tobytes()).hexdigest()
    return OpenHandAssets(
        v_template=v_template, faces=faces.astype(np.int64), weights=weights,
        joint_regressor=J_reg, keypoint_regressor=kp_reg, shapedirs=shapedirs_m,
        joint_frames=frames_m, parents=np.asarray(JOINT_PARENTS, dtype=np.int64),
        metadata={"builder_version": BUILDER_VERSION, "template_sha256": digest,
                  "shape_names": ",".join(SHAPE_NAMES), "units": "metres",
                  "frame": "fingers -x, back of hand +y, thumb +z; wrist joint at the origin"},
    )
