"""Reader of the Rendered Hand pose Dataset (RHD, ``RHD_published_v2``).

Layout::

    root/<split>/color/%05d.png            320x320 RGB
    root/<split>/mask/%05d.png             part labels: 0 background, 1 person, 2-17 left hand, 18-33 right hand
    root/<split>/anno_<split>.pickle       {id: {'xyz': (42,3) metres, 'uv_vis': (42,3) u, v, visible,
                                                 'K': (3,3)}}

Keypoints 0-20 are the left hand, 21-41 the right hand. Per hand RHD's order is wrist, then each finger
(thumb, index, middle, ring, little) from **tip to base**: 1 thumb tip, 2 thumb DIP (IP), 3 thumb PIP (MCP),
4 thumb MCP (CMC), 5 index tip, ... :data:`RHD_TO_FREIHAND` reorders one hand to FreiHAND's base-to-tip
order.

One sample per image: the hand with more visible keypoints (``uv_vis[:, 2]``); a tie goes to the hand with
more mask pixels (the official hand3d reader picks by mask pixels alone). Images whose chosen hand has fewer
than ``min_visible`` visible keypoints are skipped. A left hand is mirrored to a right hand (image, mask and
``K`` flipped, 3D mirrored, ``left=True``). RHD has no mesh: ``has_vertices`` and ``has_pose`` are False.
``keypoints_2d`` is the projection of the 3D keypoints with ``K``; ``bbox`` is the box around them (the usual
RHD protocol crops around the ground-truth hand).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from handrecon.camera import bbox_from_points, mirror_intrinsics, mirror_points
from handrecon.data import _io
from handrecon.data.sample import DatasetError, make_sample
from handrecon.hand.mano import read_restricted_pickle

__all__ = ["RHD", "RHD_TO_FREIHAND", "RHD_LEFT_LABELS", "RHD_RIGHT_LABELS"]

#: FreiHAND keypoint k is RHD keypoint RHD_TO_FREIHAND[k] (within one hand).
RHD_TO_FREIHAND = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)
#: Inclusive ranges of mask labels of each hand.
RHD_LEFT_LABELS = (2, 17)
RHD_RIGHT_LABELS = (18, 33)


class RHD(Dataset):
    """RHD in the common sample format (see the module docstring).

    Args:
        root: the ``RHD_published_v2`` folder.
        split: ``"training"`` or ``"evaluation"``.
        min_visible: skip images whose chosen hand has fewer visible keypoints (default 1).

    Raises:
        FileNotFoundError / DatasetError / ManoFileError naming the file that is missing or malformed.
    """

    def __init__(self, root, split: str = "training", min_visible: int = 1):
        if split not in ("training", "evaluation"):
            raise ValueError(f"split must be 'training' or 'evaluation', got {split!r}")
        self.root, self.split = Path(root), split
        self.folder = self.root / split
        path = self.folder / f"anno_{split}.pickle"
        anno = read_restricted_pickle(path, what="RHD annotation file")
        if not isinstance(anno, dict) or not anno:
            raise DatasetError(f"{path}: expected a non-empty dict {{id: {{'xyz', 'uv_vis', 'K'}}}}", path)
        self._anno: dict[int, dict] = {}
        for key, item in anno.items():
            self._anno[int(key)] = self._check(path, key, item)
        self.ids: list[int] = []
        self.hands: list[int] = []  # 0 left, 1 right, -1 tie (decided by the mask when read)
        for key in sorted(self._anno):
            vis = self._anno[key]["uv_vis"][:, 2] > 0.5
            n_left, n_right = int(vis[:21].sum()), int(vis[21:].sum())
            if max(n_left, n_right) < min_visible:
                continue
            self.ids.append(key)
            self.hands.append(0 if n_left > n_right else 1 if n_right > n_left else -1)

    @staticmethod
    def _check(path, key, item) -> dict:
        if not isinstance(item, dict):
            raise DatasetError(f"{path}: entry {key} must be a dict with 'xyz', 'uv_vis', 'K', "
                               f"got {type(item).__name__}", path)
        expected = {"xyz": (42, 3), "uv_vis": (42, 3), "K": (3, 3)}
        out = {}
        for name, shape in expected.items():
            value = item.get(name)
            if not isinstance(value, np.ndarray) or value.shape != shape:
                got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
                raise DatasetError(f"{path}: entry {key} '{name}' is {got}; expected an array of shape {shape}",
                                   path)
            out[name] = value.astype(np.float32)
        return out

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        sid, hand = self.ids[index], self.hands[index]
        anno = self._anno[sid]
        image = _io.read_image(self.folder / "color" / f"{sid:05d}.png")
        mask_path = self.folder / "mask" / f"{sid:05d}.png"
        labels = _io.read_label_image(mask_path) if mask_path.is_file() else None
        if labels is not None and labels.shape != image.shape[:2]:
            raise DatasetError(f"{mask_path}: mask size {labels.shape} differs from the image's {image.shape[:2]}",
                               mask_path)
        if hand == -1:
            if labels is None:
                hand = 1
            else:
                n_left = np.count_nonzero((labels >= RHD_LEFT_LABELS[0]) & (labels <= RHD_LEFT_LABELS[1]))
                n_right = np.count_nonzero((labels >= RHD_RIGHT_LABELS[0]) & (labels <= RHD_RIGHT_LABELS[1]))
                hand = 0 if n_left > n_right else 1
        sl = slice(0, 21) if hand == 0 else slice(21, 42)
        order = list(RHD_TO_FREIHAND)
        xyz = anno["xyz"][sl][order].astype(np.float64)
        visible = (anno["uv_vis"][sl, 2][order] > 0.5).astype(np.float32)
        K = anno["K"].astype(np.float64)
        fields = {"visible": visible}
        if labels is not None:
            lo, hi = RHD_LEFT_LABELS if hand == 0 else RHD_RIGHT_LABELS
            fields["mask"] = ((labels >= lo) & (labels <= hi)).astype(np.uint8)
        left = hand == 0
        if left:
            W = image.shape[1]
            image = np.ascontiguousarray(image[:, ::-1])
            if "mask" in fields:
                fields["mask"] = np.ascontiguousarray(fields["mask"][:, ::-1])
            K = mirror_intrinsics(K, W)
            xyz = mirror_points(xyz)
        try:
            sample = make_sample(image, K, index=index, left=left, keypoints=xyz, **fields)
        except ValueError as exc:
            raise DatasetError(f"{self.folder / f'anno_{self.split}.pickle'}: entry {sid}: {exc}") from None
        sample["bbox"] = bbox_from_points(sample["keypoints_2d"].astype(np.float64), square=False).astype(np.float32)
        sample["has_bbox"] = np.bool_(True)
        return sample

    def __repr__(self) -> str:
        return f"RHD(root='{self.root}', split='{self.split}', samples={len(self)})"

