"""Reader of HO-3D (v2 layout; v3's ``.jpg`` images are accepted too).

Layout::

    root/train.txt | evaluation.txt              one "<sequence>/<frame>" per line
    root/<split>/<sequence>/rgb/<frame>.png      640x480 RGB
    root/<split>/<sequence>/meta/<frame>.pkl     annotations (a pickle of a dict of numpy arrays)

Training meta: ``handPose`` (48) MANO axis-angle, ``handBeta`` (10), ``handTrans`` (3), ``camMat`` (3,3),
``handJoints3D`` (21,3). Evaluation meta: ``handJoints3D`` (3,) = the root joint only, ``handBoundingBox``
(4,) = (x0, y0, x1, y1) pixels, ``camMat``.

Conventions (from the official toolbox ``vis_HO3D.py``):

* 3D is in an OpenGL camera frame (y up, z backward); we convert to OpenCV with ``diag(1, -1, -1)``
  (the toolbox's ``coordChangeMat`` in ``project_3D_points(..., is_OpenGL_coords=True)``).
* ``handJoints3D`` is MANO's 16 kinematic joints (wrist; index, middle, little, ring, thumb, 3 each) followed
  by the 5 fingertips (thumb, index, middle, ring, little); the toolbox maps it to FreiHAND's order with
  ``jointsMapManoToSimple`` = :data:`HO3D_TO_FREIHAND`.
* The mesh is MANO with ``flat_hand_mean=True`` (pose used as given) and ``trans`` added to the posed mesh
  (whose root joint stays at the shaped template's root joint ``J0(beta)``). Our ``HandModel`` puts its wrist
  keypoint at ``translation`` instead, so we pose at the origin and move the mesh to
  ``J0(beta) + handTrans`` for its root joint. HO3D's fingertips may come from other tip vertices than
  FreiHAND's (744, 320, 443, 555, 672); we keep the dataset's keypoints as labels.

``pose`` in the sample is ``handPose`` with its global rotation turned into the OpenCV frame, so that
``hand(pose, shape, translation=root)`` reproduces ``vertices`` up to the model's wrist definition. Masks are
not read (``has_mask`` False).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from handrecon.camera import bbox_from_points
from handrecon.data import _io
from handrecon.data._posing import GL_TO_CV, axis_angle_compose, rest_root_joint, run_hand
from handrecon.data.sample import DatasetError, make_sample
from handrecon.hand.mano import read_restricted_pickle

__all__ = ["HO3D", "HO3D_TO_FREIHAND"]

#: FreiHAND keypoint k is HO3D ``handJoints3D`` row HO3D_TO_FREIHAND[k] (the toolbox's jointsMapManoToSimple).
HO3D_TO_FREIHAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)


def _array(meta: dict, key: str, shape: tuple, path) -> np.ndarray | None:
    value = meta.get(key)
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else None
    if arr is None or arr.size != int(np.prod(shape)):
        got = arr.shape if arr is not None else type(value).__name__
        raise DatasetError(f"{path}: '{key}' has shape {got}; expected {shape}", path)
    return arr.reshape(shape)


class HO3D(Dataset):
    """HO-3D in the common sample format (see the module docstring).

    Args:
        root: the HO3D folder (holding ``train.txt`` and ``train/``).
        split: ``"train"`` or ``"evaluation"``.
        hand_model: the user's MANO model (``load_hand_model("mano", path=...)``) to build the mesh; without
            it ``has_vertices`` is False.

    Raises:
        FileNotFoundError / DatasetError / ManoFileError naming the file that is missing or malformed.
    """

    def __init__(self, root, split: str = "train", hand_model=None):
        if split not in ("train", "evaluation"):
            raise ValueError(f"split must be 'train' or 'evaluation', got {split!r}")
        self.root, self.split, self.hand_model = Path(root), split, hand_model
        list_path = _io.require_file(self.root / f"{split}.txt", f"HO3D {split} list (lines '<sequence>/<frame>')")
        self.names: list[tuple[str, str]] = []
        for n, line in enumerate(list_path.read_text().splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("/")
            if len(parts) != 2 or not all(parts):
                raise DatasetError(f"{list_path}: line {n} is {line!r}; expected '<sequence>/<frame>'", list_path)
            self.names.append((parts[0], parts[1]))
        if not self.names:
            raise DatasetError(f"{list_path}: lists no frames", list_path)

    def __len__(self) -> int:
        return len(self.names)

    def paths(self, index: int) -> tuple[Path, Path]:
        seq, frame = self.names[index]
        folder = self.root / self.split / seq
        image = _io.find_image(folder / "rgb", frame)
        if image is None:
            raise FileNotFoundError(f"HO3D image not found: '{folder / 'rgb' / frame}.png' (or .jpg)")
        return image, folder / "meta" / f"{frame}.pkl"

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        image_path, meta_path = self.paths(index)
        meta = read_restricted_pickle(meta_path, what="HO3D meta file")
        if not isinstance(meta, dict):
            raise DatasetError(f"{meta_path}: expected a dict of annotations, got {type(meta).__name__}", meta_path)
        K = _array(meta, "camMat", (3, 3), meta_path)
        if K is None:
            raise DatasetError(f"{meta_path}: 'camMat' (3,3) is missing", meta_path)
        image = _io.read_image(image_path)
        fields: dict = {}
        joints = meta.get("handJoints3D")
        joints = None if joints is None else np.asarray(joints, dtype=np.float64)
        if joints is not None and joints.size == 3:
            fields["root"] = joints.reshape(3) @ GL_TO_CV
        elif joints is not None:
            joints = _array(meta, "handJoints3D", (21, 3), meta_path)
            fields["keypoints"] = joints[list(HO3D_TO_FREIHAND)] @ GL_TO_CV
        box = _array(meta, "handBoundingBox", (4,), meta_path)
        if box is not None:
            fields["bbox"] = box
        pose = _array(meta, "handPose", (16, 3), meta_path)
        beta = _array(meta, "handBeta", (10,), meta_path)
        trans = _array(meta, "handTrans", (3,), meta_path)
        if pose is not None and beta is not None and trans is not None:
            pose_cv = pose.copy()
            pose_cv[0] = axis_angle_compose(GL_TO_CV, pose[0])
            fields["pose"], fields["shape"] = pose_cv, beta
            if self.hand_model is not None:
                vertices, _, kin = run_hand(self.hand_model, pose, beta)
                raw = vertices - kin[0] + rest_root_joint(self.hand_model, beta)  # MANO's own frame
                fields["vertices"] = (raw + trans) @ GL_TO_CV
        try:
            sample = make_sample(image, K, index=index, **fields)
        except ValueError as exc:
            raise DatasetError(f"{meta_path}: {exc}", meta_path) from None
        if not sample["has_bbox"] and sample["has_keypoints_2d"]:
            sample["bbox"] = bbox_from_points(sample["keypoints_2d"].astype(np.float64), square=False).astype(np.float32)
            sample["has_bbox"] = np.bool_(True)
        return sample

    def __repr__(self) -> str:
        return f"HO3D(root='{self.root}', split='{self.split}', samples={len(self)})"
