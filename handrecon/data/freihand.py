"""Reader of datasets in FreiHAND layout: real FreiHAND and our synthetic sets.

Layout (``split`` = ``training`` or ``evaluation``)::

    root/
      <split>/rgb/%08d.jpg|png         images; real FreiHAND training holds 4 versions of each sample
      <split>/mask/%08d.jpg|png        hand masks, one per unique sample (optional)
      <split>_K.json                   N x (3x3) intrinsics                                  (required)
      <split>_xyz.json                 N x (21x3) keypoints, metres, camera frame            (optional)
      <split>_scale.json               N reference-bone lengths, metres                      (optional)
      <split>_verts.json               N x (778x3) mesh vertices, metres                     (optional)
      <split>_mano.json                N x 61 MANO values: 48 pose, 10 shape, 2 uv_root, 1 scale (optional)
      <split>_pose.json                ours: N x {"pose": 48, "shape": 10, "root": 3}         (optional)
      <split>_meta.json                ours: N x {"left": bool, "visible": 21 bools, ...}    (optional)
      handrecon.json                   ours: generator version, seed, hand model             (optional)

N = number of unique samples = length of ``<split>_K.json``. The number of versions is the number of rgb
images divided by N (4 for real FreiHAND training: image ``id + N * k`` is version ``k`` of sample ``id``
and shares its labels and mask; 1 for the evaluation split and for our synthetic sets).

Vertices come from ``<split>_verts.json`` when present; otherwise from ``<split>_mano.json`` posed with the
user's MANO model (``hand_model=load_hand_model("mano", path=...)``) the way the official toolbox does it,
or from ``<split>_pose.json`` posed with ``hand_model``. Without any of these ``has_vertices`` is False.

Synthetic sets may hold left hands (``<split>_meta.json`` ``"left"``): their image and labels show the left
hand as rendered. With ``mirror_left=True`` (default) the reader mirrors them back to a right hand and sets
``left``. In ``<split>_pose.json``, ``pose``/``shape`` describe the right hand before mirroring and ``root``
is in the frame of ``<split>_xyz.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from handrecon.camera import mirror_intrinsics, mirror_points
from handrecon.data import _io
from handrecon.data._posing import freihand_mano_mesh, run_hand
from handrecon.data.sample import NUM_SHAPE, DatasetError, make_sample

__all__ = ["FreiHAND", "FREIHAND_UNIQUE_TRAINING", "FREIHAND_EVALUATION"]

FREIHAND_UNIQUE_TRAINING = 32560
FREIHAND_EVALUATION = 3960


def _list_images(folder: Path) -> list[str]:
    """File names in ``folder`` indexed by their integer stem; errors on gaps or duplicates."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: '{folder}' (expected FreiHAND layout "
                                "<root>/<split>/rgb/%08d.jpg)")
    names: dict[int, str] = {}
    for entry in os.scandir(folder):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in _io.IMAGE_EXTENSIONS and stem.isdigit():
            i = int(stem)
            if i in names:
                raise DatasetError(f"{folder}: two images with id {i}: {names[i]} and {entry.name}", folder)
            names[i] = entry.name
    if not names:
        raise DatasetError(f"{folder}: no images named %08d.jpg or %08d.png", folder)
    if max(names) != len(names) - 1:
        missing = next(i for i in range(len(names)) if i not in names)
        raise DatasetError(f"{folder}: image ids are not contiguous from 0 ({len(names)} images, "
                           f"largest id {max(names)}, first missing {missing:08d})", folder)
    return [names[i] for i in range(len(names))]


class FreiHAND(Dataset):
    """FreiHAND-layout dataset returning samples in the common format (:mod:`handrecon.data.sample`).

    Args:
        root: the folder holding ``<split>/`` and the ``<split>_*.json`` files.
        split: ``"training"`` or ``"evaluation"``.
        hand_model: a :class:`handrecon.hand.HandModel` to pose ``<split>_mano.json`` (MANO, for real
            FreiHAND without ``<split>_verts.json``) or ``<split>_pose.json`` when no vertices are stored.
        versions: which sample versions to use (e.g. ``(0,)`` for the green-screen originals); None = all.
        mirror_left: mirror left hands to right hands (see the module docstring).

    All labels are loaded at construction (streaming the large vertex file into float32 arrays).
    ``len(ds) = N * len(versions)``; item ``i`` is version ``versions[i // N]`` of sample ``i % N``.

    Raises:
        FileNotFoundError: a required file or folder is missing (the message names it).
        DatasetError: a file is malformed (wrong JSON, length or shapes; the message names it).
    """

    def __init__(self, root, split: str = "training", hand_model=None, versions=None, mirror_left: bool = True):
        if split not in ("training", "evaluation"):
            raise ValueError(f"split must be 'training' or 'evaluation', got {split!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"FreiHAND root folder not found: '{self.root}'")
        self.split = split
        self.hand_model = hand_model
        self.mirror_left = bool(mirror_left)
        prefix = self.root / split

        def label(name):
            return self.root / f"{split}_{name}.json"

        self.K = _io.load_array_list(label("K"), (3, 3), "intrinsics (N x 3x3)")
        n = self.num_unique = len(self.K)
        if n == 0:
            raise DatasetError(f"{label('K')}: holds no samples", label("K"))

        def optional(name, shape, what):
            path = label(name)
            return _io.load_array_list(path, shape, what, expected_len=n) if path.is_file() else None

        self.xyz = optional("xyz", (21, 3), "keypoints (N x 21x3)")
        self.scale = optional("scale", (), "reference-bone lengths (N numbers)")
        self.verts = optional("verts", (778, 3), "vertices (N x 778x3)")
        self.mano = optional("mano", (61,), "MANO parameters (N x 61)")
        self.pose, self.shape, self.pose_root = self._read_pose(label("pose"), n)
        self.left, self.visible = self._read_meta(label("meta"), n)
        info_path = self.root / "handrecon.json"
        self.info = _io.read_json(info_path, "handrecon.json") if info_path.is_file() else {}

        self._images = _list_images(prefix / "rgb")
        if len(self._images) % n:
            raise DatasetError(f"{prefix / 'rgb'}: {len(self._images)} images is not a multiple of the "
                               f"{n} samples in {label('K')}", prefix / "rgb")
        self.num_versions = len(self._images) // n
        if versions is None:
            versions = tuple(range(self.num_versions))
        versions = tuple(int(v) for v in versions)
        if not versions or any(not 0 <= v < self.num_versions for v in versions):
            raise ValueError(f"versions must be in [0, {self.num_versions}) for {prefix / 'rgb'} "
                             f"({len(self._images)} images, {n} samples), got {versions}")
        self.versions = versions
        self._mask_dir = next((prefix / d for d in ("mask", "segmap") if (prefix / d).is_dir()), None)

    # ---- label files ---------------------------------------------------------------------------
    @staticmethod
    def _read_pose(path: Path, n: int):
        if not path.is_file():
            return None, None, None
        data = _io.read_json(path, "hand-model parameters")
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise DatasetError(f"{path}: expected a list of {n} entries {{\"pose\": 48, \"shape\": "
                               f"{NUM_SHAPE}, \"root\": 3}}, got {got}", path)
        pose, shape, root = np.zeros((n, 16, 3), np.float32), np.zeros((n, NUM_SHAPE), np.float32), \
            np.zeros((n, 3), np.float32)
        for i, item in enumerate(data):
            try:
                p = np.asarray(item["pose"], np.float64).reshape(-1)
                s = np.asarray(item["shape"], np.float64).reshape(-1)
                r = np.asarray(item["root"], np.float64).reshape(-1)
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{path}: entry {i} must be {{\"pose\": 48 numbers, \"shape\": {NUM_SHAPE} "
                                   "numbers, \"root\": 3 numbers}", path) from None
            if p.size != 48 or s.size != NUM_SHAPE or r.size != 3:
                raise DatasetError(f"{path}: entry {i} has pose/shape/root of sizes {p.size}/{s.size}/{r.size}; "
                                   f"expected 48/{NUM_SHAPE}/3", path)
            pose[i], shape[i], root[i] = p.reshape(16, 3), s, r
        return pose, shape, root

    @staticmethod
    def _read_meta(path: Path, n: int):
        if not path.is_file():
            return None, None
        data = _io.read_json(path, "sample metadata")
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise DatasetError(f"{path}: expected a list of {n} entries {{\"left\": bool, \"visible\": 21 "
                               f"bools}}, got {got}", path)
        left, visible = np.zeros(n, bool), np.ones((n, 21), np.float32)
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise DatasetError(f"{path}: entry {i} must be an object, got {type(item).__name__}", path)
            left[i] = bool(item.get("left", False))
            if "visible" in item:
                v = np.asarray(item["visible"], dtype=np.float32).reshape(-1)
                if v.size != 21:
                    raise DatasetError(f"{path}: entry {i} 'visible' has {v.size} values; expected 21", path)
                visible[i] = v
        return left, visible

    # ---- items ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_unique * len(self.versions)

    def locate(self, index: int) -> tuple[int, int, Path]:
        """Dataset index -> (sample id, version, image path)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        n = self.num_unique
        sid, version = index % n, self.versions[index // n]
        return sid, version, self.root / self.split / "rgb" / self._images[sid + n * version]

    def __getitem__(self, index: int) -> dict:
        sid, _, image_path = self.locate(int(index))
        image = _io.read_image(image_path)
        H, W = image.shape[:2]
        K = self.K[sid].astype(np.float64)
        fields: dict = {}
        if self._mask_dir is not None:
            mask_path = _io.find_image(self._mask_dir, f"{sid:08d}")
            if mask_path is not None:
                mask = (_io.read_label_image(mask_path) > 0).astype(np.uint8) if self._mask_dir.name == "segmap" \
                    else _io.read_binary_mask(mask_path)
                if mask.shape != (H, W):
                    raise DatasetError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, image "
                                       f"{image_path} is {W}x{H}", mask_path)
                fields["mask"] = mask
        if self.xyz is not None:
            fields["keypoints"] = self.xyz[sid]
        if self.scale is not None:
            fields["scale"] = self.scale[sid]
        left = bool(self.left[sid]) if self.left is not None else False
        if self.visible is not None:
            fields["visible"] = self.visible[sid]

        pose = shape = None
        if self.pose is not None:
            pose, shape = self.pose[sid], self.shape[sid]
            if self.xyz is None:
                fields["root"] = self.pose_root[sid]
        elif self.mano is not None and self.hand_model is not None:
            pose, shape, verts = freihand_mano_mesh(self.hand_model, self.mano[sid], K)
            if self.verts is None:
                fields["vertices"] = verts
        if self.verts is not None:
            fields["vertices"] = self.verts[sid]
        elif "vertices" not in fields and self.pose is not None and self.hand_model is not None:
            root = self.pose_root[sid] if self.xyz is None else self.xyz[sid, 0]
            if left:  # the stored root is in the mirrored (left-hand) frame; the pose is the right hand's
                root = mirror_points(np.asarray(root, np.float64)[None])[0]
            verts = run_hand(self.hand_model, pose, shape, root)[0]
            fields["vertices"] = mirror_points(verts) if left else verts

        if left and self.mirror_left:
            image = np.ascontiguousarray(image[:, ::-1])
            if "mask" in fields:
                fields["mask"] = np.ascontiguousarray(fields["mask"][:, ::-1])
            K = mirror_intrinsics(K, W)
            for key in ("keypoints", "vertices", "root"):
                if key in fields:
                    fields[key] = mirror_points(np.asarray(fields[key], np.float64).reshape(-1, 3)).reshape(
                        np.shape(fields[key]))
        if pose is not None and not (left and not self.mirror_left):
            fields["pose"], fields["shape"] = pose, shape
        return make_sample(image, K, index=int(index) % len(self), left=left, **fields)

    def __repr__(self) -> str:
        return (f"FreiHAND(root='{self.root}', split='{self.split}', samples={self.num_unique}, "
                f"versions={self.versions} of {self.num_versions})")
