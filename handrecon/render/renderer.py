"""Headless OpenGL rasteriser (moderngl on EGL): shaded RGB, per-pixel mesh ids and metric depth in one pass.

Built for two jobs: the synthetic data engine (hundreds of small frames per second on a CPU with Mesa's
llvmpipe) and product overlays (a mesh over a photo, side views).

>>> r = Renderer(224, 224)
>>> res = r.render([Mesh(vertices, faces, color=(0.9, 0.7, 0.6), id=0)], K)
>>> res.rgb, res.ids, res.depth, res.mask(0)      # (H,W,3) uint8, (H,W) int32, (H,W) float32, (H,W) bool

Conventions (DESIGN.md): camera space is OpenCV's (x right, y down, z forward, metres); ``K`` is a
3x3 pinhole matrix in pixels with zero skew. **Pixel convention** (OpenCV's): pixel ``(row i, column j)`` has
its centre at ``(u, v) = (j, i)`` and covers ``[j-0.5, j+0.5) x [i-0.5, i+0.5)``; a camera-space point ``X``
projects to ``u = fx*X/Z + cx``, ``v = fy*Y/Z + cy`` and is drawn in pixel ``(round(v), round(u))``. The image
centre is therefore ``((W-1)/2, (H-1)/2)``. Returned arrays have row 0 at the top of the image.

Implementation notes: one standalone moderngl context per thread, shared by all Renderers, created on first
use and destroyed before a ``fork`` (Mesa state inherited by a child hangs it), so DataLoader workers and the
parent each make their own; one shader program per feature set; all meshes go into
one interleaved vertex buffer and one index buffer (grown, never shrunk) and are drawn with one call into a
framebuffer with three colour attachments (RGBA8 colour, R32I id, R32F camera z) and a depth buffer. The
projection maps image row ``i`` to GL window row ``i`` (GL's y axis points down the image), so ``glReadPixels``
returns rows top-first and nothing is flipped on the CPU; front faces are therefore clockwise in GL terms.

llvmpipe rasterises with ``LP_NUM_THREADS`` threads (default: all cores); in DataLoader workers set
``LP_NUM_THREADS=1`` before the first render so that workers don't fight over the cores.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Renderer",
    "RendererUnavailable",
    "Mesh",
    "Light",
    "Lighting",
    "RenderResult",
    "DEFAULT_LIGHTING",
    "SKIN",
    "projection_from_K",
    "vertex_normals",
    "cavity_occlusion",
]

SKIN = (0.93, 0.74, 0.62)
MAX_LIGHTS = 4
_FLOATS_PER_VERTEX = 17  # pos 3, normal 3, albedo 3, noise coord 3, ao 1, noise amp 1, spec 1, shininess 1, id 1
_ATTRIBUTES = ("in_pos", "in_nrm", "in_col", "in_noise", "in_mat", "in_id")
_ATTRIBUTE_FORMATS = ("3f", "3f", "3f", "3f", "4f", "1i")
_ATTRIBUTE_SKIPS = ("12x", "12x", "12x", "12x", "16x", "4x")
_FRAMEBUFFER_OBJECTS = ("_fbo", "_fbo_aux", "_fbo_col", "_fbo_ms", "_fbo_resolve",
                        "_rb_col", "_rb_id", "_rb_z", "_rb_depth", "_rb_ms_col", "_rb_ms_depth")

_EGL_HELP = (
    "the headless renderer needs OpenGL 3.3 through EGL (Mesa's llvmpipe is enough, no GPU needed); on Debian/"
    "Ubuntu install the packages libegl1 libegl-mesa0 libgl1-mesa-dri (apt-get install libegl1 libegl-mesa0 "
    "libgl1-mesa-dri) and the Python package moderngl"
)


class RendererUnavailable(RuntimeError):
    """The GL context could not be created (no EGL / Mesa libraries, or no moderngl)."""


# --------------------------------------------------------------------------------------------------- checks

def _as_array(x, name):
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} must be array-like: {e}") from None


def _check_float(x, name, shape, dtype=np.float32):
    """Array of ``shape`` (None = any length) as ``dtype``; finite; ValueError naming ``name`` otherwise."""
    a = _as_array(x, name)
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ",".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
    a = a.astype(dtype, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_K(K):
    K = _check_float(K, "K", (3, 3), np.float64)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K must have positive focal lengths, got fx={K[0, 0]}, fy={K[1, 1]}")
    if K[0, 1] != 0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise ValueError(f"K must be [[fx,0,cx],[0,fy,cy],[0,0,1]] (zero skew), got {K.tolist()}")
    return K


def _check_size(size, name="size"):
    try:
        w, h = (int(s) for s in size)
        ok = all(float(s) == int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (width, height), got {size!r}") from None
    if not ok or w < 1 or h < 1 or w > 16384 or h > 16384:
        raise ValueError(f"{name} must be (width, height) of positive integers, got {size!r}")
    return w, h


def _check_image(image, name="image"):
    a = _as_array(image, name)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must be a uint8 (H,W,3) RGB image, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 (H,W,3) RGB image, got dtype {a.dtype}")
    return a


# --------------------------------------------------------------------------------------------------- geometry

def _vertex_normal_sums(vertices, faces) -> np.ndarray:
    """(V,3) float32 sums of the incident faces' normals scaled by twice their area (not normalised).
    Column-wise numpy (takes and bincounts on 1-D arrays): about 70 us for the 778-vertex hand."""
    vT = np.ascontiguousarray(vertices.T)
    fT = np.ascontiguousarray(faces.T)
    i0, i1, i2 = fT
    x, y, z = vT
    x0, y0, z0 = x.take(i0), y.take(i0), z.take(i0)
    ax, ay, az = x.take(i1) - x0, y.take(i1) - y0, z.take(i1) - z0
    bx, by, bz = x.take(i2) - x0, y.take(i2) - y0, z.take(i2) - z0
    idx = fT.reshape(-1)
    nv = len(vertices)
    n = np.empty((nv, 3), np.float32)
    for c, fc in enumerate((ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)):
        n[:, c] = np.bincount(idx, weights=np.tile(fc, 3), minlength=nv)
    return n


def vertex_normals(vertices, faces) -> np.ndarray:
    """(V,3) float32 unit vertex normals, area-weighted average of the incident faces' normals.

    ``vertices`` (V,3), ``faces`` (F,3) int. Normals follow the winding (outward for counter-clockwise faces
    seen from outside, as trimesh). Vertices with no face get a zero normal.
    """
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces).astype(np.intp, copy=False)
    n = _vertex_normal_sums(v, f)
    norm = np.sqrt((n * n).sum(1, keepdims=True))
    np.divide(n, norm, out=n, where=norm > 1e-30)
    return n


def cavity_occlusion(vertices, faces, strength=1.0, normals=None) -> np.ndarray:
    """(V,) float32 cheap ambient-occlusion term in (0,1]: darkens concave vertices (creases between
    fingers, palm lines), leaves convex ones at 1. For :attr:`Mesh.ao`.

    Cavity = how far the mean of a vertex's neighbours lies outside the surface along the vertex normal,
    relative to the mean edge length (the umbrella Laplacian); ``ao = 1 / (1 + strength * 4 * max(cavity, 0))``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if normals is None:
        normals = vertex_normals(v, f)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])  # both directions (duplicates on shared edges weigh both sides equally)
    cnt = np.bincount(e[:, 0], minlength=len(v)).astype(np.float64)
    cnt[cnt == 0] = 1.0
    mean = np.stack([np.bincount(e[:, 0], weights=v[e[:, 1], c], minlength=len(v)) for c in range(3)], 1)
    lap = mean / cnt[:, None] - v
    elen = np.bincount(e[:, 0], weights=np.linalg.norm(v[e[:, 1]] - v[e[:, 0]], axis=1), minlength=len(v)) / cnt
    cav = (lap * normals).sum(1) / np.maximum(elen, 1e-12)
    return (1.0 / (1.0 + strength * 4.0 * np.maximum(cav, 0.0))).astype(np.float32)


def projection_from_K(K, size, znear=0.01, zfar=100.0) -> np.ndarray:
    """(4,4) float64 OpenGL clip matrix (row-major, acts on column vectors) for intrinsics ``K`` and image
    ``size`` (width, height).

    Maps camera-space ``(X,Y,Z,1)`` to clip space with ``w = Z`` so that window coordinates are
    ``x_w = u + 0.5``, ``y_w = v + 0.5`` (u, v from ``K``): pixel centres of GL (at half-integers) fall on
    OpenCV's integer pixel centres and GL window row ``i`` is image row ``i`` (top first). Depth is the
    standard perspective depth between ``znear`` and ``zfar``.
    """
    K = np.asarray(K, dtype=np.float64)
    w, h = size
    n, f = float(znear), float(zfar)
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * K[0, 0] / w
    P[0, 2] = 2.0 * (K[0, 2] + 0.5) / w - 1.0
    P[1, 1] = 2.0 * K[1, 1] / h
    P[1, 2] = 2.0 * (K[1, 2] + 0.5) / h - 1.0
    P[2, 2] = (f + n) / (f - n)
    P[2, 3] = -2.0 * f * n / (f - n)
    P[3, 2] = 1.0
    return P


# --------------------------------------------------------------------------------------------------- scene

@dataclass
class Mesh:
    """One triangle mesh to render.

    vertices: (V,3) camera-space metres (numpy or torch; stored as float32).
    faces: (F,3) vertex indices (stored as int32). Drawn double-sided; the winding only decides which side's
        normal is flipped (faces counter-clockwise seen from outside give outward normals, trimesh's rule).
    color: albedo in 0..1, one (3,) colour or per-vertex (V,3).
    id: label written to the id buffer (>= 0; meshes with the same id share a mask label).
    texture_noise: amplitude of procedural 3D fractal value noise (4 octaves) multiplying the albedo by
        ``1 + texture_noise * n`` with ``n`` in [-1,1]; 0 turns it off. Skin tone variation for synthetic data.
    noise_scale: noise frequency, lattice cells per metre of ``noise_coords`` (80 = blotches of ~1 cm).
    noise_seed: integer or float; shifts the noise field so that each sample differs.
    noise_coords: (V,3) object-space positions the noise is a function of (e.g. the hand's rest-pose
        template, so the pattern sticks to the skin when the hand moves); default ``vertices - mean``.
    specular, shininess: Blinn-Phong strength (0..1, white highlights) and exponent.
    normals: optional (V,3) vertex normals; default area-weighted from the faces (:func:`vertex_normals`).
    ao: optional (V,) ambient-occlusion factors in 0..1 multiplying the ambient light (see
        :func:`cavity_occlusion`); default 1.
    """

    vertices: object
    faces: object
    color: object = SKIN
    id: int = 0
    texture_noise: float = 0.0
    noise_scale: float = 80.0
    noise_seed: float = 0.0
    noise_coords: object = None
    specular: float = 0.0
    shininess: float = 32.0
    normals: object = None
    ao: object = None

    def __post_init__(self):
        self.vertices = _check_float(self.vertices, "vertices", (None, 3))
        nv = len(self.vertices)
        f = _as_array(self.faces, "faces")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must have shape (F,3), got {f.shape}")
        if f.dtype.kind not in "iu":
            raise ValueError(f"faces must hold integer vertex indices, got dtype {f.dtype}")
        if f.size and (f.min() < 0 or f.max() >= nv):
            raise ValueError(f"faces index vertices out of range [0, {nv}): min {f.min()}, max {f.max()}")
        self.faces = f.astype(np.int32, copy=False)
        c = _as_array(self.color, "color")
        c = _check_float(c, "color", (3,) if c.ndim == 1 else (nv, 3))
        if c.min() < 0 or c.max() > 1:
            raise ValueError("color must be an albedo in 0..1")
        self.color = c
        for name in ("texture_noise", "noise_scale", "noise_seed", "specular", "shininess"):
            val = getattr(self, name)
            try:
                val = float(val)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {val!r}") from None
            if not np.isfinite(val):
                raise ValueError(f"{name} must be finite, got {val}")
            setattr(self, name, val)
        if self.texture_noise < 0 or self.specular < 0 or self.shininess <= 0:
            raise ValueError("texture_noise and specular must be >= 0 and shininess > 0")
        try:
            ident = int(self.id)
        except (TypeError, ValueError):
            raise ValueError(f"id must be an integer, got {self.id!r}") from None
        if ident != self.id or not 0 <= ident < 2**31 - 1:
            raise ValueError(f"id must be an integer in [0, 2**31-1), got {self.id!r}")
        self.id = ident
        if self.noise_coords is not None:
            self.noise_coords = _check_float(self.noise_coords, "noise_coords", (nv, 3))
        if self.normals is not None:
            self.normals = _check_float(self.normals, "normals", (nv, 3))
        if self.ao is not None:
            self.ao = _check_float(self.ao, "ao", (nv,))
            if self.ao.min() < 0 or self.ao.max() > 1:
                raise ValueError("ao must be in 0..1")


@dataclass
class Light:
    """A directional light. ``direction``: the way the light travels, camera space (normalised on use;
    (0,0,1) = shining from the camera into the scene, +y = from above). ``color``: RGB intensity (>= 0)."""

    direction: object = (0.0, 0.0, 1.0)
    color: object = (1.0, 1.0, 1.0)

    def __post_init__(self):
        d = _check_float(self.direction, "direction", (3,), np.float64)
        if np.linalg.norm(d) < 1e-12:
            raise ValueError("direction must be a non-zero 3-vector")
        self.direction = d / np.linalg.norm(d)
        self.color = _check_float(self.color, "color", (3,), np.float64)
        if self.color.min() < 0:
            raise ValueError("color of a light must be >= 0")


@dataclass
class Lighting:
    """Ambient RGB term plus up to 4 directional lights (Lambert diffuse + Blinn-Phong specular)."""

    ambient: object = (0.35, 0.35, 0.35)
    lights: Sequence[Light] = field(default_factory=lambda: [
        Light((0.25, 0.45, 1.0), (0.6, 0.6, 0.6)),    # key: from above-left of the camera
        Light((-0.6, -0.2, 0.5), (0.2, 0.2, 0.22)),   # fill: from the lower right
    ])

    def __post_init__(self):
        self.ambient = _check_float(self.ambient, "ambient", (3,), np.float64)
        if self.ambient.min() < 0:
            raise ValueError("ambient must be >= 0")
        self.lights = [lt if isinstance(lt, Light) else Light(*lt) for lt in self.lights]
        if len(self.lights) > MAX_LIGHTS:
            raise ValueError(f"lights: at most {MAX_LIGHTS} directional lights, got {len(self.lights)}")


DEFAULT_LIGHTING = Lighting()


@dataclass
class RenderResult:
    """Outputs of :meth:`Renderer.render`; a field is None when it was not asked for.

    rgb: (H,W,3) uint8, shaded meshes over the background. ids: (H,W) int32 mesh id per pixel, -1 where no
    mesh. depth: (H,W) float32 camera-space z in metres of the visible surface, 0 where no mesh.
    """

    rgb: np.ndarray | None
    ids: np.ndarray | None
    depth: np.ndarray | None

    def mask(self, id: int | None = None) -> np.ndarray:
        """(H,W) bool: visible pixels of mesh label ``id`` (any mesh when None). Needs ``ids``."""
        if self.ids is None:
            raise ValueError("mask needs the id buffer: render with ids=True")
        return self.ids >= 0 if id is None else self.ids == int(id)


# --------------------------------------------------------------------------------------------------- shaders

_SHADER_HEADER = """#version 330
#define PER_PIXEL %d
#define NOISE %d
#define SPECULAR %d
#define NUM_LIGHTS %d
"""

_SHADER_COMMON = """
#define MAX_LIGHTS %(max_lights)d
uniform vec3 ambient;
uniform vec3 light_dir[MAX_LIGHTS];   // towards the light, unit
uniform vec3 light_col[MAX_LIGHTS];

// Integer-hash 3D value noise, fractal sum of 4 octaves, in [-1, 1].
float hash(ivec3 p) {
    uint h = uint(p.x) * 1597334677u ^ uint(p.y) * 3812015801u ^ uint(p.z) * 2798796415u;
    h = (h ^ (h >> 15u)) * 2246822519u;
    h = (h ^ (h >> 13u)) * 3266489917u;
    h ^= h >> 16u;
    return float(h) * (2.0 / 4294967295.0) - 1.0;
}

float value_noise(vec3 p) {
    vec3 i = floor(p);
    vec3 f = p - i;
    vec3 u = f * f * (3.0 - 2.0 * f);
    ivec3 c = ivec3(i);
    float a = mix(hash(c), hash(c + ivec3(1, 0, 0)), u.x);
    float b = mix(hash(c + ivec3(0, 1, 0)), hash(c + ivec3(1, 1, 0)), u.x);
    float d = mix(hash(c + ivec3(0, 0, 1)), hash(c + ivec3(1, 0, 1)), u.x);
    float e = mix(hash(c + ivec3(0, 1, 1)), hash(c + ivec3(1, 1, 1)), u.x);
    return mix(mix(a, b, u.y), mix(d, e, u.y), u.z);
}

float fbm(vec3 p) {
    float s = 0.0;
    float amp = 0.5333;   // 1 / (1 + 1/2 + 1/4 + 1/8)
    for (int o = 0; o < 4; ++o) {
        s += amp * value_noise(p);
        p = p * 2.03 + vec3(17.1, 31.7, 5.3);
        amp *= 0.5;
    }
    return s;
}

vec3 noisy_albedo(vec3 albedo, vec3 q, float amp) {
#if NOISE
    return albedo * max(1.0 + amp * fbm(q), 0.0);
#else
    return albedo;
#endif
}

// Diffuse light (ambient * ao + sum of Lambert terms), and specular (Blinn-Phong, white) at one point.
void light(vec3 p, vec3 n, float ao, vec2 spec, out vec3 diffuse, out vec3 specular) {
    vec3 V = normalize(-p);
    diffuse = ambient * ao;
    specular = vec3(0.0);
    for (int i = 0; i < NUM_LIGHTS; ++i) {
        float ndl = dot(n, light_dir[i]);
        diffuse += light_col[i] * max(ndl, 0.0);
#if SPECULAR
        vec3 H = normalize(light_dir[i] + V);
        specular += light_col[i] * (ndl > 0.0 ? spec.x * pow(max(dot(n, H), 0.0), spec.y) : 0.0);
#endif
    }
}

vec3 unit_normal(vec3 n, vec3 p) {
    float len_n = length(n);
    return len_n > 1e-20 ? n / len_n : normalize(-p);
}
""" % {"max_lights": MAX_LIGHTS}

_VERTEX_SHADER = """
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
in vec3 in_noise;
in vec4 in_mat;   // ao, noise amplitude, specular strength, shininess
in int in_id;
flat out int v_id;
out float v_z;
#if PER_PIXEL
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
out vec3 v_noise;
out float v_ao;
flat out vec3 v_mat;
#else
out vec3 v_front;   // shaded colour of the side the normal points to
out vec3 v_back;    // and of the other side
#endif
void main() {
    v_id = in_id;
    v_z = in_pos.z;
    gl_Position = proj * vec4(in_pos, 1.0);
#if PER_PIXEL
    v_pos = in_pos;
    v_nrm = in_nrm;
    v_col = in_col;
    v_noise = in_noise;
    v_ao = in_mat.x;
    v_mat = in_mat.yzw;
#else
    // Gouraud: light both sides at the vertex, the fragment picks the side it sees.
    vec3 n = unit_normal(in_nrm, in_pos);
    vec3 albedo = noisy_albedo(in_col, in_noise, in_mat.y);
    vec3 diffuse, specular;
    light(in_pos, n, in_mat.x, in_mat.zw, diffuse, specular);
    v_front = albedo * diffuse + specular;
    light(in_pos, -n, in_mat.x, in_mat.zw, diffuse, specular);
    v_back = albedo * diffuse + specular;
#endif
}
"""

_FRAGMENT_SHADER = """
flat in int v_id;
in float v_z;
#if PER_PIXEL
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;
in vec3 v_noise;
in float v_ao;
flat in vec3 v_mat;
#else
in vec3 v_front;
in vec3 v_back;
#endif
layout(location = 0) out vec4 f_color;
layout(location = 1) out int f_id;
layout(location = 2) out float f_z;
void main() {
#if PER_PIXEL
    vec3 n = unit_normal(v_nrm, v_pos);
    if (!gl_FrontFacing) n = -n;
    vec3 diffuse, specular;
    light(v_pos, n, v_ao, v_mat.yz, diffuse, specular);
    f_color = vec4(noisy_albedo(v_col, v_noise, v_mat.x) * diffuse + specular, 1.0);
#else
    f_color = vec4(gl_FrontFacing ? v_front : v_back, 1.0);
#endif
    f_id = v_id + 1;    // 0 = background (the cleared value)
    f_z = v_z;          // perspective-correct interpolation of camera z is exact
}
"""

_BACKGROUND_VERTEX = """
#version 330
void main() {
    vec2 p = vec2(float((gl_VertexID & 1) << 2) - 1.0, float((gl_VertexID & 2) << 1) - 1.0);
    gl_Position = vec4(p, 0.0, 1.0);
}
"""

_BACKGROUND_FRAGMENT = """
#version 330
uniform sampler2D image;
layout(location = 0) out vec4 f_color;
void main() {
    f_color = texelFetch(image, ivec2(gl_FragCoord.xy), 0);   // GL row i = image row i
}
"""


# --------------------------------------------------------------------------------------------------- GL context
#
# One standalone context per thread and backend, shared by all Renderers used in that thread (moderngl draws
# into whichever context is current, and an EGL context can be current in one thread only). A Renderer used
# from another thread re-creates its GL objects there (correct but slow: keep one Renderer per thread).
# Mesa keeps per-display state (llvmpipe's rasteriser threads) that a forked child inherits without the
# threads: a context created in the child then hangs on its first draw. So before any fork
# (os.register_at_fork) the forking thread's contexts are destroyed and the EGL display terminated; parent and
# child both re-create contexts lazily (~20 ms), and each Renderer re-creates its GL objects when it sees a
# new context generation. (A context current in *another* thread of the parent at the fork keeps the display
# alive; render from the main thread in processes that fork.)


class _SharedContext:
    def __init__(self, ctx, moderngl, generation, egl, egl_context):
        self.ctx, self.moderngl, self.generation = ctx, moderngl, generation
        self.egl, self.egl_context = egl, egl_context
        self.pid = os.getpid()
        self.epoch = _EPOCH[0]


_TLS = threading.local()  # .contexts: backend -> _SharedContext of this thread
_GENERATION = [0]  # counts contexts ever created in this process
_EPOCH = [0]  # bumped when contexts are torn down before a fork: older ones are dead in every thread
_EGL_DISPLAYS: dict = {}  # display handle -> ctypes libEGL, to terminate before a fork


def _load_egl():
    """ctypes handle on the libEGL that glcontext uses (for eglGetCurrent*/eglMakeCurrent/eglTerminate)."""
    import ctypes
    import ctypes.util

    name = os.environ.get("GLCONTEXT_LINUX_LIBEGL") or ctypes.util.find_library("EGL")
    if not name:
        return None
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return None
    egl.eglGetCurrentDisplay.restype = ctypes.c_void_p
    egl.eglGetCurrentContext.restype = ctypes.c_void_p
    egl.eglMakeCurrent.argtypes = [ctypes.c_void_p] * 4
    egl.eglTerminate.argtypes = [ctypes.c_void_p]
    return egl


def _current_context(backend):
    """This thread's live context for ``backend``, or None."""
    contexts = getattr(_TLS, "contexts", None)
    shared = contexts.get(backend) if contexts else None
    if shared is not None and (shared.pid != os.getpid() or shared.epoch != _EPOCH[0]):
        del contexts[backend]  # the parent's (forked without hooks) or torn down before a fork: dead
        shared = None
    return shared


def _shared_context(backend) -> _SharedContext:
    """This thread's context for ``backend``, created on first use and made current."""
    shared = _current_context(backend)
    if shared is None:
        try:
            import moderngl
        except Exception as e:
            raise RendererUnavailable(f"cannot import moderngl ({type(e).__name__}: {e}); {_EGL_HELP}") from e
        try:
            ctx = moderngl.create_context(standalone=True, backend=backend, require=330)
        except Exception as e:
            raise RendererUnavailable(
                f"cannot create a headless OpenGL 3.3 context (moderngl backend {backend!r}): "
                f"{type(e).__name__}: {e}; {_EGL_HELP}") from e
        egl = _load_egl() if backend == "egl" else None
        cur = None
        if egl is not None:
            cur = egl.eglGetCurrentContext()
            dpy = egl.eglGetCurrentDisplay()
            if dpy:
                _EGL_DISPLAYS[dpy] = egl
        _GENERATION[0] += 1
        if getattr(_TLS, "contexts", None) is None:
            _TLS.contexts = {}
        shared = _TLS.contexts[backend] = _SharedContext(ctx, moderngl, _GENERATION[0], egl, cur)
    elif shared.egl is not None:
        if shared.egl.eglGetCurrentContext() != shared.egl_context:
            shared.ctx.__enter__()  # another context was made current meanwhile
    elif len(_TLS.contexts) > 1:
        shared.ctx.__enter__()
    return shared


def _release_contexts():
    """Destroy this thread's contexts and terminate the EGL displays (see above); runs before every fork."""
    contexts = getattr(_TLS, "contexts", None) or {}
    for shared in contexts.values():
        if shared.pid != os.getpid():
            continue
        try:
            if shared.egl is not None:
                shared.egl.eglMakeCurrent(shared.egl.eglGetCurrentDisplay(), None, None, None)
            shared.ctx.release()
        except Exception:
            pass
    contexts.clear()
    for dpy, egl in list(_EGL_DISPLAYS.items()):
        try:
            egl.eglTerminate(dpy)
        except Exception:
            pass
    _EGL_DISPLAYS.clear()
    _EPOCH[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_release_contexts)


# --------------------------------------------------------------------------------------------------- renderer

class Renderer:
    """Headless rasteriser. ``Renderer(width, height, backend="egl", samples=0, shading="vertex")``.

    ``width``, ``height``: default image size (``render`` may ask for another; framebuffers are reused while
    the size is unchanged). ``samples``: MSAA samples for the RGB image (0 = none, the fast path used for
    training data; 4 for smooth overlays). The ids and depth are never multisampled: they come from a
    separate single-sample pass when ``samples > 0``. ``shading``: ``"vertex"`` (Gouraud: lighting and noise
    evaluated at the vertices, both sides, the fragment picks the side it sees; about 3x cheaper on llvmpipe
    and indistinguishable when triangles cover a few pixels, as for a hand in a 224x224 crop) or ``"pixel"``
    (Phong: per-fragment normals, lighting and noise; for large overlays).

    All Renderers of a thread share one GL context per backend, created on the first :meth:`render`; before
    a ``fork`` it is destroyed, so a Renderer (made or used before the fork, pickled or not) works in
    DataLoader workers and in the parent afterwards (it re-creates its GL objects on next use, as it does when
    used from another thread). Not thread-safe: one Renderer per thread, and fork from the rendering thread.
    Raises :class:`RendererUnavailable` when EGL/OpenGL 3.3 cannot be had.
    """

    def __init__(self, width: int = 224, height: int = 224, backend: str = "egl", samples: int = 0,
                 shading: str = "vertex"):
        self.width, self.height = _check_size((width, height))
        if shading not in ("vertex", "pixel"):
            raise ValueError(f"shading must be 'vertex' or 'pixel', got {shading!r}")
        self.shading = shading
        if not isinstance(backend, str) or not backend:
            raise ValueError(f"backend must be a glcontext backend name such as 'egl', got {backend!r}")
        if samples not in (0, 2, 4, 8, 16):
            raise ValueError(f"samples must be one of 0, 2, 4, 8, 16, got {samples!r}")
        self.backend = backend
        self.samples = int(samples)
        self._reset()

    def _reset(self):
        """Forget every GL object (they belong to a context that is gone, or are released by the caller)."""
        self._ctx = None
        self._generation = None
        self._fbo_size = None
        self._vbo = self._ibo = None
        self._vbo_cap = self._ibo_cap = 0
        self._bg_tex = self._bg_prog = self._bg_vao = None
        self._programs = {}  # (per_pixel, noise, specular, num_lights) -> (program, uniforms)
        self._vaos = {}  # same key -> vertex array on the current buffers
        for name in _FRAMEBUFFER_OBJECTS:
            setattr(self, name, None)

    # pickling (DataLoader with the spawn start method) drops the GL objects; they are re-created on use
    def __getstate__(self):
        return {"width": self.width, "height": self.height, "backend": self.backend, "samples": self.samples,
                "shading": self.shading}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass

    def _alive(self):
        """Do our GL objects belong to this thread's live context?"""
        shared = _current_context(self.backend)
        return self._ctx is not None and shared is not None and shared.generation == self._generation

    def release(self):
        """Free this Renderer's GL objects now (the next render re-creates them). The thread's shared GL
        context stays; it goes with the process, or before a ``fork`` (see the module notes)."""
        if self._alive():
            objs = [*self._vaos.values(), *(p for p, _ in self._programs.values()), self._vbo, self._ibo,
                    self._bg_tex, self._bg_vao, self._bg_prog, *(getattr(self, n) for n in _FRAMEBUFFER_OBJECTS)]
            for obj in objs:
                if obj is not None:
                    try:
                        obj.release()
                    except Exception:
                        pass
        self._reset()

    @property
    def context(self):
        """The moderngl context this Renderer draws with (this thread's shared one for its backend)."""
        self._ensure_context()
        return self._ctx

    def _ensure_context(self):
        shared = _shared_context(self.backend)  # also makes it current
        if self._ctx is not None and self._generation == shared.generation:
            return
        # First use, or the context was re-created (after a fork): our objects died with the old one.
        self._reset()
        ctx = shared.ctx
        self._moderngl = shared.moderngl
        self._ctx = ctx
        self._generation = shared.generation
        self._bg_prog = ctx.program(vertex_shader=_BACKGROUND_VERTEX, fragment_shader=_BACKGROUND_FRAGMENT)
        self._bg_vao = ctx.vertex_array(self._bg_prog, [])
        self._vertex_scratch = np.zeros((0, _FLOATS_PER_VERTEX), np.float32)

    def _ensure_framebuffers(self, size):
        if self._fbo_size == size:
            return
        for name in _FRAMEBUFFER_OBJECTS:  # framebuffers first, then their attachments
            obj = getattr(self, name)
            if obj is not None:
                obj.release()
            setattr(self, name, None)
        ctx = self._ctx
        self._rb_col = ctx.renderbuffer(size, 4)
        self._rb_id = ctx.renderbuffer(size, 1, dtype="i4")
        self._rb_z = ctx.renderbuffer(size, 1, dtype="f4")
        self._rb_depth = ctx.depth_renderbuffer(size)
        self._fbo = ctx.framebuffer([self._rb_col, self._rb_id, self._rb_z], self._rb_depth)
        self._fbo_aux = ctx.framebuffer([self._rb_id, self._rb_z])  # cleared to 0 (id 0 = none, z 0)
        self._fbo_col = ctx.framebuffer([self._rb_col], self._rb_depth)  # cleared to the background
        self._fbo_ms = self._fbo_resolve = None
        if self.samples:
            self._rb_ms_col = ctx.renderbuffer(size, 4, samples=self.samples)
            self._rb_ms_depth = ctx.depth_renderbuffer(size, samples=self.samples)
            self._fbo_ms = ctx.framebuffer([self._rb_ms_col], self._rb_ms_depth)
            self._fbo_resolve = ctx.framebuffer([self._rb_col])
        self._fbo_size = size

    def _upload(self, meshes):
        """Fill the interleaved vertex buffer and the index buffer with all meshes; returns the index count."""
        nv = sum(len(m.vertices) for m in meshes)
        nf = sum(len(m.faces) for m in meshes)
        if len(self._vertex_scratch) < nv:
            self._vertex_scratch = np.zeros((max(nv, 2 * len(self._vertex_scratch), 1024), _FLOATS_PER_VERTEX),
                                            np.float32)
        buf = self._vertex_scratch[:nv]
        idx = np.empty((nf, 3), np.int32)
        v0 = f0 = 0
        for m in meshes:
            n, f = len(m.vertices), len(m.faces)
            rows = buf[v0:v0 + n]
            rows[:, 0:3] = m.vertices
            rows[:, 3:6] = _vertex_normal_sums(m.vertices, m.faces) if m.normals is None else m.normals
            rows[:, 6:9] = m.color
            if m.texture_noise > 0:
                coords = m.vertices - m.vertices.mean(0) if m.noise_coords is None else m.noise_coords
                offset = np.mod(m.noise_seed * np.array([12.9898, 78.233, 37.719]), 997.0)
                rows[:, 9:12] = coords * m.noise_scale + offset
            rows[:, 12] = 1.0 if m.ao is None else m.ao
            rows[:, 13] = m.texture_noise
            rows[:, 14] = m.specular
            rows[:, 15] = m.shininess
            rows[:, 16].view(np.int32)[:] = m.id
            np.add(m.faces, v0, out=idx[f0:f0 + f])
            v0, f0 = v0 + n, f0 + f
        ctx = self._ctx
        vbytes, ibytes = buf.nbytes, idx.nbytes
        if self._vbo is None or vbytes > self._vbo_cap or ibytes > self._ibo_cap:
            for obj in (*self._vaos.values(), self._vbo, self._ibo):
                if obj is not None:
                    obj.release()
            self._vaos = {}
            self._vbo_cap = max(vbytes, 2 * self._vbo_cap, 1 << 16)
            self._ibo_cap = max(ibytes, 2 * self._ibo_cap, 1 << 16)
            self._vbo = ctx.buffer(reserve=self._vbo_cap, dynamic=True)
            self._ibo = ctx.buffer(reserve=self._ibo_cap, dynamic=True)
        if vbytes:
            self._vbo.write(buf)
        if ibytes:
            self._ibo.write(idx)
        return 3 * nf

    def _program(self, key):
        """Shader program specialised to (per_pixel, noise, specular, num_lights), built once; and its VAO."""
        if key not in self._programs:
            header = _SHADER_HEADER % tuple(int(k) for k in key)
            prog = self._ctx.program(vertex_shader=header + _SHADER_COMMON + _VERTEX_SHADER,
                                     fragment_shader=header + _SHADER_COMMON + _FRAGMENT_SHADER)
            names = ("proj", "ambient", "light_dir", "light_col")
            self._programs[key] = (prog, {n: prog[n] for n in names if n in prog})
        prog, uniforms = self._programs[key]
        if key not in self._vaos:
            fmt, used = [], []
            for name, f, skip in zip(_ATTRIBUTES, _ATTRIBUTE_FORMATS, _ATTRIBUTE_SKIPS):
                if name in prog:  # attributes the compiler dropped are skipped over
                    fmt.append(f)
                    used.append(name)
                else:
                    fmt.append(skip)
            self._vaos[key] = self._ctx.vertex_array(prog, [(self._vbo, " ".join(fmt), *used)],
                                                     index_buffer=self._ibo, index_element_size=4)
        return uniforms, self._vaos[key]

    @staticmethod
    def _set_uniforms(u, K, size, znear, zfar, lighting):
        P = projection_from_K(K, size, znear, zfar)
        u["proj"].write(P.T.astype(np.float32).tobytes())  # GL wants column-major
        if "ambient" in u:
            u["ambient"].value = tuple(lighting.ambient)
        nl = len(lighting.lights)
        if nl:
            dirs = np.array([-lt.direction for lt in lighting.lights], np.float32)  # towards the light
            cols = np.array([lt.color for lt in lighting.lights], np.float32)
            for name, arr in (("light_dir", dirs), ("light_col", cols)):
                if name in u:
                    u[name].write(arr[:u[name].array_length].tobytes())

    def _draw_background(self, fbo, bg_color, bg_image, size):
        fbo.use()
        fbo.clear(*bg_color, 1.0, depth=1.0)
        if bg_image is not None:
            if self._bg_tex is None or self._bg_tex.size != size:
                if self._bg_tex is not None:
                    self._bg_tex.release()
                self._bg_tex = self._ctx.texture(size, 3)
            self._bg_tex.write(np.ascontiguousarray(bg_image))
            self._bg_tex.use(0)
            self._ctx.disable(self._moderngl.DEPTH_TEST)
            self._bg_vao.render(self._moderngl.TRIANGLES, vertices=3)  # one triangle covering the screen

    def render(self, meshes: Mesh | Iterable[Mesh], K, size=None, background=None, lights=None,
               znear: float = 0.01, zfar: float = 100.0, rgb: bool = True, ids: bool = True,
               depth: bool = True) -> RenderResult:
        """Render ``meshes`` (a :class:`Mesh` or a list; may be empty) seen by a camera with intrinsics ``K``.

        size: (width, height) of the image; default the background image's size, else the Renderer's.
        background: None (black), an RGB colour as 3 numbers in 0..255, or a uint8 (H,W,3) RGB image of the
            output size; only ``rgb`` sees it.
        lights: a :class:`Lighting`, a list of :class:`Light` (with the default ambient), or None (default).
        znear, zfar: clipping planes in metres (geometry outside is cut).
        rgb, ids, depth: which outputs to read back (each costs time); the others are None.
        Returns a :class:`RenderResult`.
        """
        if isinstance(meshes, Mesh):
            meshes = [meshes]
        meshes = list(meshes)
        for i, m in enumerate(meshes):
            if not isinstance(m, Mesh):
                raise ValueError(f"meshes[{i}] must be a Mesh, got {type(m).__name__}")
        K = _check_K(K)
        bg_image, bg_color = None, (0.0, 0.0, 0.0)
        if background is not None:
            b = _as_array(background, "background")
            if b.ndim == 3:
                bg_image = _check_image(b, "background")
                if size is None:
                    size = (bg_image.shape[1], bg_image.shape[0])
            else:
                b = _check_float(b, "background", (3,), np.float64)
                if b.min() < 0 or b.max() > 255:
                    raise ValueError("background colour must be 3 numbers in 0..255")
                bg_color = tuple(b / 255.0)
        size = (self.width, self.height) if size is None else _check_size(size)
        if bg_image is not None and bg_image.shape[:2] != (size[1], size[0]):
            raise ValueError(f"background image has shape {bg_image.shape}, expected ({size[1]},{size[0]},3)")
        try:
            znear, zfar = float(znear), float(zfar)
        except (TypeError, ValueError):
            raise ValueError("znear and zfar must be numbers") from None
        if not (np.isfinite(znear) and np.isfinite(zfar) and 0 < znear < zfar):
            raise ValueError(f"znear and zfar must satisfy 0 < znear < zfar, got {znear}, {zfar}")
        if lights is None:
            lighting = DEFAULT_LIGHTING
        elif isinstance(lights, Lighting):
            lighting = lights
        else:
            lighting = Lighting(lights=list(lights))

        self._ensure_context()
        mgl, ctx = self._moderngl, self._ctx
        self._ensure_framebuffers(size)
        count = self._upload(meshes)
        key = (self.shading == "pixel", any(m.texture_noise > 0 for m in meshes),
               any(m.specular > 0 for m in meshes), len(lighting.lights))
        uniforms, vao = self._program(key)
        self._set_uniforms(uniforms, K, size, znear, zfar, lighting)
        ctx.disable(mgl.CULL_FACE | mgl.BLEND)
        ctx.front_face = "cw"  # image rows run down GL's y axis: counter-clockwise in the image is cw in GL

        # Single-sample pass: ids + z (+ the colour when not multisampling).
        self._fbo_aux.clear(0.0, 0.0, 0.0, 0.0)
        if self.samples and rgb:
            self._fbo.use()
            self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            ids_pass = ids or depth
        else:
            self._draw_background(self._fbo_col, bg_color, bg_image if rgb else None, size)
            ids_pass = True
        if ids_pass and count:
            self._fbo.use()
            ctx.enable(mgl.DEPTH_TEST)
            vao.render(mgl.TRIANGLES, vertices=count)
        if self.samples and rgb:
            self._draw_background(self._fbo_ms, bg_color, bg_image, size)
            if count:
                ctx.enable(mgl.DEPTH_TEST)
                vao.render(mgl.TRIANGLES, vertices=count)
            ctx.copy_framebuffer(self._fbo_resolve, self._fbo_ms)

        w, h = size
        out_rgb = out_ids = out_z = None
        if rgb:
            out_rgb = np.empty((h, w, 3), np.uint8)
            self._fbo.read_into(out_rgb, components=3, attachment=0, alignment=1)
        if ids:
            out_ids = np.empty((h, w), np.int32)
            self._fbo.read_into(out_ids, components=1, attachment=1, alignment=1, dtype="i4")
            out_ids -= 1
        if depth:
            out_z = np.empty((h, w), np.float32)
            self._fbo.read_into(out_z, components=1, attachment=2, alignment=1, dtype="f4")
        return RenderResult(out_rgb, out_ids, out_z)
