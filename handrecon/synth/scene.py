"""One synthetic sample from (seed, index): pose, shape, camera, appearance -> image and labels.

Every sample draws from its own generator ``numpy.random.default_rng([seed, index])``, so a sample is the
same whichever worker renders it, in whatever order or batch. Each image is rendered by :class:`handrecon.render.Renderer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from handrecon.camera import mirror_intrinsics, mirror_points, project_points
from handrecon.hand import load_hand_model
from handrecon.hand.lbs import matrix_to_axis_angle
from handrecon.synth.appearance import (
    AppearanceConfig,
    apply_artefacts,
    random_background,
    sample_lighting,
    sample_occluder,
    sample_skin,
)
from handrecon.synth.poses import PoseJitter, sample_pose_angles
from handrecon.synth.views import ViewConfig, palm_centre, place_camera

__all__ = ["SceneConfig", "SceneGenerator", "VISIBILITY_TOLERANCE", "MASK_KINDS"]

#: What a sample's ``mask`` may cover (:attr:`SceneConfig.mask`).
MASK_KINDS = ("visible", "full")
#: A vertex is visible when the rendered depth at its pixel is within this many metres of its own depth.
VISIBILITY_TOLERANCE = 0.005
#: A keypoint (inside the hand, except the tips) is visible when at least this many of the skin vertices
#: around it (its ``_NEIGHBOURS`` nearest in the rest pose) are visible.
_NEIGHBOURS, _MIN_VISIBLE = 24, 3


@dataclass(frozen=True)
class SceneConfig:
    """Everything that defines the distribution of samples (stored in ``handrecon.json``).

    Attributes:
        size: square image side, pixels.
        shape_sigma: standard deviation of the shape coefficients (units of the model's shape space),
            clipped at ``shape_clip``.
        left_probability: chance of a left hand (the right-hand sample mirrored, flagged ``left``).
        mask: what the ``mask`` label covers. ``"visible"``: the hand pixels seen in the image (FreiHAND's
            masks). ``"full"``: every pixel the hand covers, also behind occluders (amodal): the silhouette
            that CMR's 1D registration compares with the whole projected mesh. An occluder cuts the visible
            mask, and the 1D root of even the ground-truth mesh is then 0.17 m off on average (docs/RESULTS.md).
            The images are the same either way.
    """

    size: int = 224
    pose: PoseJitter = field(default_factory=PoseJitter)
    view: ViewConfig = field(default_factory=ViewConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    shape_sigma: float = 1.0
    shape_clip: float = 2.5
    left_probability: float = 0.0
    mask: str = "visible"

    def __post_init__(self):
        if int(self.size) < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if not 0.0 <= self.left_probability <= 1.0:
            raise ValueError(f"left_probability must be in [0, 1], got {self.left_probability}")
        if self.mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {MASK_KINDS}, got {self.mask!r}")


class SceneGenerator:
    """Renders synthetic samples.

    Args:
        seed: the dataset's seed.
        config: :class:`SceneConfig`.
        hand: a :class:`handrecon.hand.HandModel` (default: the bundled open hand).
        renderer: a :class:`handrecon.render.Renderer`; created on first use in this process otherwise.

    ``generate(indices)`` returns one dict per index with the keys of the common sample format
    (``handrecon.data.sample``) plus ``source`` (pose-table row, negative for a named pose), ``view``
    (hemispherical viewpoint, 0..215) and ``occluded``.
    """

    def __init__(self, seed: int = 0, config: SceneConfig | None = None, hand=None, renderer=None):
        self.seed = int(seed)
        self.config = config or SceneConfig()
        self.hand = hand if hand is not None else load_hand_model("open")
        self._faces = self.hand.faces.cpu().numpy().astype(np.int32)
        # Skin noise is a function of the rest-pose surface, so the pattern sticks to the skin.
        self._noise_coords = self.hand.v_template.cpu().numpy()
        with torch.no_grad():
            rest = self.hand()
        d = torch.cdist(rest.keypoints[0], rest.vertices[0])
        self._keypoint_skin = d.topk(_NEIGHBOURS, largest=False).indices.numpy()  # (21, _NEIGHBOURS)
        self._renderer = renderer

    @property
    def renderer(self):
        if self._renderer is None:
            from handrecon.render.renderer import Renderer

            self._renderer = Renderer(self.config.size, self.config.size)
        return self._renderer

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def generate(self, indices) -> list[dict]:
        indices = [int(i) for i in indices]
        if any(i < 0 for i in indices):
            raise ValueError(f"indices must be non-negative, got {indices}")
        cfg = self.config
        rngs = [self.rng(i) for i in indices]
        angles, sources, shapes = [], [], []
        for rng in rngs:
            a, s = sample_pose_angles(rng, cfg.pose)
            angles.append(a)
            sources.append(s)
            shapes.append(np.clip(rng.normal(size=self.hand.num_shape) * cfg.shape_sigma, -cfg.shape_clip,
                                  cfg.shape_clip))
        # One sample per hand-model call: batched matrix products round differently with the batch size,
        # and a sample must not depend on which others share its batch.
        poses, verts, kps = [], [], []
        with torch.no_grad():
            for a, s in zip(angles, shapes):
                pose = self.hand.angles_to_pose(torch.as_tensor(a, dtype=torch.float32)[None])
                out = self.hand(pose, torch.as_tensor(s, dtype=torch.float32)[None])
                poses.append(pose[0].numpy())
                verts.append(out.vertices[0].double().numpy())
                kps.append(out.keypoints[0].double().numpy())
        return [self._finish(i, rng, poses[k], shapes[k], sources[k], verts[k], kps[k])
                for k, (i, rng) in enumerate(zip(indices, rngs))]

    def _finish(self, index, rng, pose, shape, source, verts_model, kps_model) -> dict:
        from handrecon.render.renderer import Mesh

        cfg, size = self.config, self.config.size
        cam = place_camera(rng, verts_model, kps_model, size, cfg.view)
        vertices = (verts_model - kps_model[0]) @ cam.R.T + cam.root
        keypoints = (kps_model - kps_model[0]) @ cam.R.T + cam.root
        pose = pose.copy()
        pose[0] = matrix_to_axis_angle(torch.as_tensor(cam.R)).numpy()

        albedo, noise, noise_seed = sample_skin(rng, cfg.appearance)
        lighting = sample_lighting(rng, cfg.appearance)
        background = random_background(rng, size)
        meshes = [Mesh(vertices, self._faces, color=albedo, texture_noise=noise, noise_seed=noise_seed,
                       noise_coords=self._noise_coords,
                       specular=rng.uniform(0.05, 0.35), shininess=rng.uniform(8, 40), id=0)]
        occluded = rng.random() < cfg.appearance.occluder_probability
        if occluded:
            palm_depth = float(palm_centre(keypoints)[2])
            for k in range(int(rng.integers(1, 3))):
                target = keypoints[int(rng.integers(21))]
                ov, of, oc = sample_occluder(rng, target, palm_depth)
                meshes.append(Mesh(ov, of, color=oc, specular=rng.uniform(0.0, 0.5), id=1 + k))
        result = self.renderer.render(meshes, cam.K, size=(size, size), background=background,
                                      lights=_to_lights(lighting))
        mask = result.ids == 0
        if occluded and cfg.mask == "full":  # the hand alone: no occluder cuts its silhouette
            mask = self.renderer.render(meshes[:1], cam.K, size=(size, size), rgb=False, depth=False).ids == 0
        image = apply_artefacts(rng, result.rgb, cfg.appearance)
        visible = _visibility(vertices, keypoints, self._keypoint_skin, cam.K, result.ids, result.depth, size)
        left = bool(rng.random() < cfg.left_probability)

        K = cam.K
        if left:
            image, mask = image[:, ::-1].copy(), mask[:, ::-1].copy()
            K = mirror_intrinsics(K, size)
            vertices, keypoints = mirror_points(vertices), mirror_points(keypoints)
        return {
            "image": np.ascontiguousarray(image),
            "mask": mask.astype(np.uint8),
            "K": K.astype(np.float32),
            "keypoints": keypoints.astype(np.float32),
            "vertices": vertices.astype(np.float32),
            "keypoints_2d": project_points(keypoints, K).astype(np.float32),
            "visible": visible.astype(np.float32),
            "root": keypoints[0].astype(np.float32),
            "scale": np.float32(np.linalg.norm(keypoints[9] - keypoints[10])),
            "pose": pose.astype(np.float32),
            "shape": np.asarray(shape, np.float32),
            "left": left,
            "index": int(index),
            "source": int(source),
            "view": int(cam.view),
            "occluded": bool(occluded),
        }


def _to_lights(lighting):
    from handrecon.render.renderer import Light, Lighting

    # Our directions point towards the lights; the renderer's say which way the light travels.
    return Lighting(ambient=lighting.ambient,
                    lights=[Light(-d, c) for d, c in zip(lighting.directions, lighting.colors)])


def _visibility(vertices, keypoints, keypoint_skin, K, ids, depth, size) -> np.ndarray:
    """(21,) bool: enough of the skin around each keypoint is seen (inside the image, in front of every
    occluder and every other part of the hand), and no occluder covers the keypoint's own pixel."""
    def pixels(points):
        uv = np.rint(project_points(points, K)).astype(int)
        return uv, (uv >= 0).all(1) & (uv < size).all(1)

    uv, inside = pixels(vertices)
    seen = np.zeros(len(vertices), bool)
    x, y = uv[inside, 0], uv[inside, 1]
    seen[inside] = (ids[y, x] == 0) & (np.abs(depth[y, x] - vertices[inside, 2]) < VISIBILITY_TOLERANCE)
    uv, inside = pixels(keypoints)
    uncovered = np.zeros(len(keypoints), bool)
    uncovered[inside] = ids[uv[inside, 1], uv[inside, 0]] <= 0
    return (seen[keypoint_skin].sum(1) >= _MIN_VISIBLE) & uncovered
