"""Training targets from common-format samples, and the transform that turns a sample into tensors.

Conventions of the targets (every model and loss relies on them):

* **Image**: float32 (3, S, S) RGB in [0, 1] (``rgb / 255``); every model normalises its input itself
  (:class:`handrecon.nn.ImageNormalization`), so the Predictor, ONNX export and training feed the same thing;
  :func:`image_to_float` / :func:`float_to_image`.
* **Normalised 2D keypoints**: ``(u + 0.5) / S`` for crop pixels ``u`` (pixel ``i`` centred at ``i``) of an
  ``S``-pixel crop, so [0, 1] spans the crop's full extent whatever its resolution (the same convention as
  ``torch.nn.functional.grid_sample(..., align_corners=False)`` after ``2 x - 1``);
  :func:`normalize_keypoints` / :func:`denormalize_keypoints`. A map of ``s`` pixels holds the keypoint at
  pixel coordinate ``x s - 0.5``.
* **Heatmaps**: (21, h, w) Gaussians ``exp(-d^2 / (2 sigma^2))`` with ``sigma`` in heatmap pixels, peak 1 at
  the keypoint (all zero when 2D is unlabelled).
* **Silhouette**: (1, s, s) float32 in [0, 1], the crop's mask area-averaged to ``s`` pixels.
* **Root-relative 3D**: ``keypoints - root`` and ``vertices - root`` in metres, in the crop's camera frame
  (already rotated by the augmentation). ``root`` (3,) is the crop-camera-space wrist.
* **Mesh hierarchy**: level ``l+1 = down[l] @ level l`` with the topology's down-sampling matrices
  (778 -> 389 -> 195 -> 98 -> 49 vertices for the bundled hand).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.sparse as sp
import torch

from handrecon.data.augment import Augmentation, View, augment_sample, relative_transform
from handrecon.data.sample import FLAG_KEYS

__all__ = [
    "image_to_float",
    "float_to_image",
    "normalize_keypoints",
    "denormalize_keypoints",
    "normalized_affine",
    "joint_heatmaps",
    "silhouette",
    "root_relative",
    "downsampling_matrices",
    "mesh_levels",
    "TargetConfig",
    "TrainingTransform",
]

def image_to_float(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) in [0, 1] (what every model takes)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray((image.astype(np.float32) / 255.0).transpose(2, 0, 1))


def float_to_image(image) -> np.ndarray:
    """float (3, H, W) in [0, 1] (numpy or tensor) from :func:`image_to_float` -> uint8 (H, W, 3) RGB."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    rgb = np.asarray(image, np.float32).transpose(1, 2, 0) * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def normalize_keypoints(uv, size: int):
    """Crop pixels (..., 2) -> [0, 1] coordinates ``(u + 0.5) / size``."""
    return (uv + 0.5) / size


def denormalize_keypoints(uv, size: int):
    """Inverse of :func:`normalize_keypoints`."""
    return uv * size - 0.5


def normalized_affine(affine, size: int) -> np.ndarray:
    """A (2,3) pixel affine between two ``size``-pixel crops, expressed on normalised coordinates."""
    N = np.array([[1.0 / size, 0.0, 0.5 / size], [0.0, 1.0 / size, 0.5 / size], [0.0, 0.0, 1.0]])
    full = np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])
    return (N @ full @ np.linalg.inv(N))[:2]


def joint_heatmaps(uv_normalized, size, sigma: float = 2.0) -> np.ndarray:
    """(N, h, w) float32 Gaussian maps for N normalised keypoints (N, 2); ``size`` = s or (h, w);
    ``sigma`` in map pixels."""
    h, w = (size, size) if np.isscalar(size) else size
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    uv = np.asarray(uv_normalized, np.float64)
    x = uv[:, 0] * w - 0.5
    y = uv[:, 1] * h - 0.5
    gx = np.exp(-((np.arange(w)[None, :] - x[:, None]) ** 2) / (2 * sigma * sigma))
    gy = np.exp(-((np.arange(h)[None, :] - y[:, None]) ** 2) / (2 * sigma * sigma))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def silhouette(mask: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: a square 0/1 mask area-resized."""
    m = np.asarray(mask, np.float32)
    if m.shape == (size, size):
        return m.copy()
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA)


def root_relative(points, root):
    """(..., N, 3) points minus (..., 3) root."""
    return points - root[..., None, :]


def downsampling_matrices(topology) -> list[sp.csr_matrix]:
    """The topology's ``down`` matrices (torch sparse or scipy) as scipy CSR float64 matrices."""
    out = []
    for d in topology.down if hasattr(topology, "down") else topology:
        if isinstance(d, torch.Tensor):
            d = d.coalesce()
            idx = d.indices().cpu().numpy()
            d = sp.csr_matrix((d.values().double().cpu().numpy(), (idx[0], idx[1])), shape=tuple(d.shape))
        out.append(sp.csr_matrix(d, dtype=np.float64))
    return out


def mesh_levels(vertices, matrices, levels: int | None = None) -> list[np.ndarray]:
    """[level 0 = vertices (V,3), level 1, ..., level L]: each level is ``down[l] @`` the previous.

    ``matrices``: a topology or a list from :func:`downsampling_matrices`; ``levels`` = L (default all).
    """
    mats = matrices if isinstance(matrices, list) and all(sp.issparse(m) for m in matrices) \
        else downsampling_matrices(matrices)
    levels = len(mats) if levels is None else int(levels)
    if not 0 <= levels <= len(mats):
        raise ValueError(f"levels must be in [0, {len(mats)}], got {levels}")
    out = [np.asarray(vertices, np.float64)]
    for m in mats[:levels]:
        if m.shape[1] != out[-1].shape[0]:
            raise ValueError(f"down matrix {m.shape} does not apply to {out[-1].shape[0]} vertices")
        out.append(np.asarray(m @ out[-1]))
    return [v.astype(np.float32) for v in out]


@dataclass(frozen=True)
class TargetConfig:
    """What :class:`TrainingTransform` produces.

    Attributes:
        input_size: side of the network input, pixels (overrides ``augmentation.output_size``).
        heatmap_size: side of the joint heatmaps; None = ``input_size // 2``; 0 = no heatmaps.
        heatmap_sigma: Gaussian sigma, heatmap pixels.
        silhouette_size: side of the silhouette target; None = ``input_size // 2``; 0 = none.
        levels: number of coarser mesh levels to emit as ``vertices_l1`` ... (0-4).
        two_view: two augmented views per sample (MobRecon's consistency losses).
        train: random augmentation; False = the deterministic evaluation crop.
        augmentation: crop and colour settings.
        seed: with ``train``, the views of sample ``i`` draw from
            ``numpy.random.default_rng([seed, epoch, i])`` (reproducible whichever worker runs them);
            None = fresh randomness every call.
    """

    input_size: int = 128
    heatmap_size: int | None = None
    heatmap_sigma: float = 2.0
    silhouette_size: int | None = None
    levels: int = 4
    two_view: bool = False
    train: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    seed: int | None = 0

    def __post_init__(self):
        if int(self.input_size) < 8:
            raise ValueError(f"input_size must be at least 8, got {self.input_size}")
        for name in ("heatmap_size", "silhouette_size"):
            v = getattr(self, name)
            if v is not None and int(v) < 0:
                raise ValueError(f"{name} must be non-negative or None, got {v}")
        if not 0 <= int(self.levels) <= 4:
            raise ValueError(f"levels must be in [0, 4], got {self.levels}")
        if not self.heatmap_sigma > 0:
            raise ValueError(f"heatmap_sigma must be positive, got {self.heatmap_sigma}")

    @property
    def heatmap_px(self) -> int:
        return self.input_size // 2 if self.heatmap_size is None else int(self.heatmap_size)

    @property
    def silhouette_px(self) -> int:
        return self.input_size // 2 if self.silhouette_size is None else int(self.silhouette_size)


class TrainingTransform:
    """Common sample -> dict of tensors ready for ``default_collate`` (augmentation + targets).

    Output keys (S = ``input_size``; every float is float32):

    ==================  ==============  ==========================================================
    ``image``           (3, S, S)       RGB in [0, 1] (see the module docstring)          
    ``K``               (3, 3)          intrinsics of the crop
    ``affine``          (2, 3)          source-image pixels -> crop pixels
    ``rotation``        (3, 3)          rotation applied to the 3D labels (crop camera = R x source camera)
    ``keypoints_2d``    (21, 2)         normalised [0, 1] crop coordinates
    ``heatmaps``        (21, h, h)      if ``heatmap_size`` > 0
    ``silhouette``      (1, s, s)       if ``silhouette_size`` > 0
    ``keypoints_rel``   (21, 3)         root-relative keypoints, metres, crop camera frame
    ``vertices_rel``    (778, 3)        root-relative vertices (level 0)
    ``vertices_l1..lL`` (V_l, 3)        root-relative vertices of mesh level l (L = ``levels``)
    ``root``            (3,)            crop-camera-space wrist, metres
    ``scale``           ()              reference-bone length, metres
    ``visible``         (21,)
    ``pose``, ``shape`` (16, 3), (10,)  hand-model parameters, global rotation in the crop frame
    ``left``            ()              1.0 for a (mirrored) left hand
    ``has_*``           ()              1.0 / 0.0 for every label flag of the sample format
    ``index``           () int64        the sample's index
    ==================  ==============  ==========================================================

    With ``two_view`` every key above gains a leading axis of 2 (view 1, view 2), plus ``affine_rel``
    (2, 3) mapping view-1 *normalised* keypoints to view-2 normalised keypoints and ``rotation_rel`` (3, 3)
    with ``view2 3D = rotation_rel @ view1 3D``; a batch then has shape (B, 2, ...). In evaluation mode the
    two views are the same crop.

    Args:
        config: :class:`TargetConfig`.
        topology: the mesh hierarchy of the dataset's template (a :class:`handrecon.mesh.Topology` or a list
            of down matrices); default: the bundled open hand's (loaded when first needed).
    """

    def __init__(self, config: TargetConfig | None = None, topology=None):
        self.config = config or TargetConfig()
        self.augmentation = dataclasses.replace(self.config.augmentation, output_size=int(self.config.input_size))
        self._down = None if topology is None else downsampling_matrices(topology)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def down(self) -> list:
        if self._down is None:
            from handrecon.hand import load_hand_model
            from handrecon.mesh import load_topology

            self._down = downsampling_matrices(load_topology(load_hand_model("open")))
        return self._down

    def rng_for(self, index: int) -> np.random.Generator:
        seed = self.config.seed
        return np.random.default_rng() if seed is None else np.random.default_rng([int(seed), self.epoch, int(index)])

    def __call__(self, sample: dict, index: int | None = None, rng: np.random.Generator | None = None) -> dict:
        cfg = self.config
        if cfg.train and rng is None:
            rng = self.rng_for(int(sample["index"]) if index is None else index)
        if not cfg.train:
            rng = None
        if not cfg.two_view:
            return self.targets(augment_sample(sample, self.augmentation, rng))
        view1 = augment_sample(sample, self.augmentation, rng)
        view2 = augment_sample(sample, self.augmentation, rng) if rng is not None else view1
        affine, rotation = relative_transform(view1, view2)
        t1, t2 = self.targets(view1), self.targets(view2)
        out = {k: torch.stack([t1[k], t2[k]]) for k in t1}
        out["affine_rel"] = torch.as_tensor(normalized_affine(affine, cfg.input_size), dtype=torch.float32)
        out["rotation_rel"] = torch.as_tensor(rotation, dtype=torch.float32)
        return out

    def targets(self, view: View) -> dict:
        """The output dict (one view) of an augmented sample."""
        cfg = self.config
        s = view.sample
        S = cfg.input_size
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
        out = {
            "image": torch.from_numpy(image_to_float(s["image"])),
            "K": f32(s["K"]),
            "affine": f32(view.affine),
            "rotation": f32(view.rotation),
            "keypoints_2d": f32(normalize_keypoints(s["keypoints_2d"].astype(np.float64), S) if s["has_keypoints_2d"]
                                else np.zeros((21, 2))),
        }
        if cfg.heatmap_px:
            out["heatmaps"] = f32(joint_heatmaps(out["keypoints_2d"].numpy(), cfg.heatmap_px, cfg.heatmap_sigma)
                                  if s["has_keypoints_2d"] else np.zeros((21, cfg.heatmap_px, cfg.heatmap_px)))
        if cfg.silhouette_px:
            out["silhouette"] = f32(silhouette(s["mask"], cfg.silhouette_px)[None])
        root = s["root"].astype(np.float64)
        out["keypoints_rel"] = f32(s["keypoints"] - root if s["has_keypoints_3d"] else np.zeros((21, 3)))
        rel = s["vertices"].astype(np.float64) - root if s["has_vertices"] else np.zeros_like(s["vertices"], np.float64)
        levels = mesh_levels(rel, self.down, cfg.levels) if cfg.levels else [rel]
        out["vertices_rel"] = f32(levels[0])
        for level in range(1, len(levels)):
            out[f"vertices_l{level}"] = f32(levels[level])
        out["root"] = f32(s["root"])
        out["scale"] = f32(s["scale"])
        out["visible"] = f32(s["visible"])
        out["pose"] = f32(s["pose"])
        out["shape"] = f32(s["shape"])
        out["left"] = f32(float(s["left"]))
        for flag in FLAG_KEYS:
            out[flag] = f32(float(s[flag]))
        out["index"] = torch.tensor(int(s["index"]), dtype=torch.int64)
        return out
