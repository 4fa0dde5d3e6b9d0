"""The articulated hand as an ``nn.Module``: a thin holder of buffers around :mod:`handrecon.hand.lbs`.

``load_hand_model("open")`` gives the bundled open hand (no licence needed);
``load_hand_model("mano", path="MANO_RIGHT.pkl")`` reads a user-supplied MANO model into the same class.
"""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources

import numpy as np
import torch
from torch import nn

from handrecon.fileio import atomic_path
from handrecon.hand.keypoints import JOINT_PARENTS, NUM_JOINTS, NUM_KEYPOINTS, keypoint_regressor_from_joints
from handrecon.hand.lbs import lbs
from handrecon.hand.poses import JOINT_LIMITS, NAMED_POSE_ANGLES, angles_to_pose
from handrecon.hand.poses import joint_frames as compute_joint_frames

__all__ = ["HandModel", "HandOutput", "load_hand_model", "OPEN_HAND_ASSET", "MANO_TIP_VERTICES"]

OPEN_HAND_ASSET = "open_hand.safetensors"
#: MANO's fingertip vertices (thumb, index, middle, ring, little); the open hand uses the same indices.
MANO_TIP_VERTICES = (744, 320, 443, 555, 672)


@dataclasses.dataclass
class HandOutput:
    """Result of :meth:`HandModel.forward` (metres)."""

    vertices: torch.Tensor  # (B,V,3)
    keypoints: torch.Tensor  # (B,21,3) FreiHAND order
    joints: torch.Tensor  # (B,16,3) posed kinematic joints, MANO order, same frame as vertices
    root: torch.Tensor  # (B,3) the translation added (= wrist keypoint position)


def _check(x, name, shape, batch=None):
    """Validate a float input: shape (with -1 as wildcard), finite values; returns a float tensor."""
    if not isinstance(x, (torch.Tensor, np.ndarray, list, tuple)):
        raise ValueError(f"{name} must be a tensor or array of shape {shape}, got {type(x).__name__}")
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must be a float tensor, got dtype {t.dtype}")
    if t.ndim != len(shape) or any(s != -1 and s != d for s, d in zip(shape, t.shape)):
        expected = "(" + ", ".join("B" if s == -1 else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} has batch size {t.shape[0]}, expected {batch} (as pose)")
    if not torch.isfinite(t.float()).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t


class HandModel(nn.Module):
    """Linear-blend-skinned right hand with 16 joints (MANO's order) and 21 keypoints (FreiHAND's order).

    Buffers: ``v_template`` (V,3), ``faces`` (F,3), ``shapedirs`` (V,3,S), ``joint_regressor`` (16,V),
    ``weights`` (V,16), ``keypoint_regressor`` (21,V), ``joint_frames`` (16,3,3), optional ``posedirs``
    (135,V*3) and ``pose_mean`` (16,3) (MANO's ``hands_mean``; the pose you pass is used as given).
    """

    def __init__(self, v_template, faces, shapedirs, joint_regressor, weights, keypoint_regressor,
                 joint_frames=None, posedirs=None, pose_mean=None, name="custom", shape_names=None):
        super().__init__()
        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.register_buffer("v_template", f32(v_template))
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces), dtype=torch.long))
        self.register_buffer("shapedirs", f32(shapedirs))
        self.register_buffer("joint_regressor", f32(joint_regressor))
        self.register_buffer("weights", f32(weights))
        self.register_buffer("keypoint_regressor", f32(keypoint_regressor))
        if joint_frames is None:
            joint_frames = compute_joint_frames(np.asarray(joint_regressor) @ np.asarray(v_template))
        self.register_buffer("joint_frames", f32(joint_frames))
        self.register_buffer("posedirs", None if posedirs is None else f32(posedirs))
        self.register_buffer("pose_mean", f32(np.zeros((NUM_JOINTS, 3)) if pose_mean is None else pose_mean))
        self.name = name
        self.shape_names = tuple(shape_names) if shape_names else tuple(f"shape_{i}" for i in range(self.num_shape))
        self.parents = list(JOINT_PARENTS)
        V = self.v_template.shape[0]
        if self.weights.shape != (V, NUM_JOINTS) or self.joint_regressor.shape != (NUM_JOINTS, V):
            raise ValueError(f"weights must be ({V},{NUM_JOINTS}) and joint_regressor ({NUM_JOINTS},{V})")
        if self.keypoint_regressor.shape != (NUM_KEYPOINTS, V):
            raise ValueError(f"keypoint_regressor must be ({NUM_KEYPOINTS},{V})")

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def joint_limits(self) -> torch.Tensor:
        """(16,3,2) min/max (flexion, abduction, twist) per joint, radians."""
        return torch.as_tensor(JOINT_LIMITS, dtype=torch.float32)

    def named_pose(self, name: str) -> torch.Tensor:
        """(16,3) axis-angle pose by name (see ``handrecon.hand.POSE_NAMES``), global rotation zero."""
        if name not in NAMED_POSE_ANGLES:
            raise ValueError(f"unknown pose name {name!r}; expected one of {sorted(NAMED_POSE_ANGLES)}")
        return angles_to_pose(torch.as_tensor(NAMED_POSE_ANGLES[name], dtype=torch.float32), self.joint_frames.cpu())

    def angles_to_pose(self, angles, global_orient=None) -> torch.Tensor:
        """Anatomical angles (...,16,3) -> axis-angle pose (...,16,3) for this hand's joint frames."""
        return angles_to_pose(angles, self.joint_frames.cpu(), global_orient)

    def forward(self, pose=None, shape=None, translation=None) -> HandOutput:
        """Pose and shape the hand.

        Args:
            pose: (B,16,3) axis-angle, index 0 = global rotation about the wrist. None = flat, batch 1.
            shape: (B,S) shape coefficients (one unit = one standard deviation). None = mean shape.
            translation: (B,3) where the wrist keypoint goes (metres). None = the origin.

        Returns:
            :class:`HandOutput` with ``vertices`` (B,V,3), ``keypoints`` (B,21,3), ``joints`` (B,16,3).
        """
        dev, dt = self.v_template.device, self.v_template.dtype
        if pose is None:
            pose = torch.zeros(1 if shape is None else len(shape), NUM_JOINTS, 3)
        pose = _check(pose, "pose", (-1, NUM_JOINTS, 3)).to(dev, dt)
        B = pose.shape[0]
        shape = torch.zeros(B, self.num_shape) if shape is None else shape
        shape = _check(shape, "shape", (-1, self.num_shape), batch=B).to(dev, dt)
        vertices, joints = lbs(pose, shape, self.v_template, self.shapedirs, self.joint_regressor,
                               self.weights, self.parents, self.posedirs)
        keypoints = torch.einsum("kv,bvc->bkc", self.keypoint_regressor, vertices)
        root = torch.zeros(B, 3, dtype=dt, device=dev)
        if translation is not None:
            root = _check(translation, "translation", (-1, 3), batch=B).to(dev, dt)
        offset = (root - keypoints[:, 0]).unsqueeze(1)
        return HandOutput(vertices + offset, keypoints + offset, joints + offset, root)

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def from_asset(cls, path) -> "HandModel":
        """Load a hand saved by :meth:`save` (safetensors: arrays + JSON metadata)."""
        from safetensors import safe_open

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"hand model file not found: {path}")
        arrays = {}
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            for key in f.keys():
                arrays[key] = f.get_tensor(key)
        required = ("v_template", "faces", "shapedirs", "joint_regressor", "weights", "keypoint_regressor")
        missing = [k for k in required if k not in arrays]
        if missing:
            raise ValueError(f"{path} is not a handrecon hand model: missing {missing}")
        names = meta.get("shape_names", "")
        return cls(**{k: arrays[k] for k in required}, joint_frames=arrays.get("joint_frames"),
                   posedirs=arrays.get("posedirs"), pose_mean=arrays.get("pose_mean"),
                   name=meta.get("name", "custom"), shape_names=names.split(",") if names else None)

    @classmethod
    def from_mano(cls, path) -> "HandModel":
        """Read a user-supplied MANO_RIGHT.pkl through the restricted unpickler (no chumpy needed)."""
        from handrecon.hand.mano import read_mano_pickle, validate_mano

        params = read_mano_pickle(path)
        validate_mano(params, path)
        v_template = np.asarray(params["v_template"], dtype=np.float64)
        V = len(v_template)
        J_reg = np.asarray(params["J_regressor"], dtype=np.float64)
        kp_reg = keypoint_regressor_from_joints(J_reg, MANO_TIP_VERTICES)
        posedirs = params.get("posedirs")
        if posedirs is not None:
            posedirs = np.asarray(posedirs).reshape(V * 3, -1).T
        hands_mean = params.get("hands_mean")
        pose_mean = np.zeros((NUM_JOINTS, 3))
        if hands_mean is not None:
            pose_mean[1:] = np.asarray(hands_mean).reshape(NUM_JOINTS - 1, 3)
        return cls(v_template, params["f"], params["shapedirs"], J_reg, params["weights"], kp_reg,
                   posedirs=posedirs, pose_mean=pose_mean, name="mano",
                   shape_names=[f"mano_beta_{i}" for i in range(np.asarray(params["shapedirs"]).shape[-1])])

    def save(self, path, extra_metadata: dict | None = None) -> None:
        """Write this hand as safetensors (atomic)."""
        from safetensors.numpy import save_file

        arrays = {k: v.detach().cpu().numpy() for k, v in self.named_buffers() if v is not None}
        meta = {"name": self.name, "shape_names": ",".join(self.shape_names)}
        meta.update({k: str(v) for k, v in (extra_metadata or {}).items()})
        with atomic_path(path, suffix=".tmp") as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp, metadata=meta)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, vertices={self.num_vertices}, shape={self.num_shape}"


def _bundled_asset_path() -> str:
    return str(resources.files("handrecon.assets").joinpath(OPEN_HAND_ASSET))


def load_hand_model(name: str = "open", path=None) -> HandModel:
    """The hand model by name: ``"open"`` (bundled) or ``"mano"`` (``path`` to MANO_RIGHT.pkl).

    A ``path`` to a ``.safetensors`` file written by :meth:`HandModel.save` also works with any name.
    """
    if path is not None and str(path).endswith(".safetensors"):
        return HandModel.from_asset(path)
    if name == "open":
        return HandModel.from_asset(_bundled_asset_path())
    if name == "mano":
        if path is None:
            raise ValueError("load_hand_model('mano') needs path= to your MANO_RIGHT.pkl "
                             "(licence and download: https://mano.is.tue.mpg.de)")
        return HandModel.from_mano(path)
    raise ValueError(f"unknown hand model {name!r}; expected 'open' or 'mano'")


def describe(hand: HandModel) -> dict:
    """Measurements of the rest-pose hand (metres) used in docs and tests."""
    out = hand()
    kp = out.keypoints[0]
    return {
        "wrist_to_middle_tip": float((kp[12] - kp[0]).norm()),
        "index_to_little_mcp": float((kp[5] - kp[17]).norm()),
        "num_vertices": hand.num_vertices,
        "num_faces": int(hand.faces.shape[0]),
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(describe(load_hand_model()), indent=2))
