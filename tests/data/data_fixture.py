"""Test helpers (no tests here): posed open hands, cheap polygon renders, and tiny datasets written in the
FreiHAND, RHD and HO3D layouts."""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch

from handrecon.camera import project_points
from handrecon.hand import load_hand_model

SIZE = 96


@functools.lru_cache(maxsize=1)
def open_hand():
    return load_hand_model("open")


def camera(size: int = SIZE, focal: float | None = None) -> np.ndarray:
    f = 1.6 * size if focal is None else focal
    return np.array([[f, 0.0, (size - 1) / 2 + 1.5], [0.0, f * 1.0, (size - 1) / 2 - 2.0], [0.0, 0.0, 1.0]])


def random_global(rng) -> np.ndarray:
    """Axis-angle of a random global rotation turning the open hand's palm (its x-z plane) roughly towards
    the camera, at a random in-plane angle."""
    tilt, _ = cv2.Rodrigues(rng.normal(scale=0.3, size=(3, 1)))
    face, _ = cv2.Rodrigues(np.array([[np.pi / 2], [0.0], [0.0]]))
    spin, _ = cv2.Rodrigues(np.array([[0.0], [0.0], [rng.uniform(-np.pi, np.pi)]]))
    aa, _ = cv2.Rodrigues(spin @ face @ tilt)
    return aa.reshape(3)


def posed_hand(rng, center=(0.0, 0.0, 0.55)):
    """(pose (16,3), shape (10,), vertices (778,3), keypoints (21,3)) of the open hand, the middle of wrist
    and middle-finger MCP near ``center`` (metres, camera frame)."""
    hand = open_hand()
    pose = rng.normal(scale=0.15, size=(16, 3))
    pose[0] = random_global(rng)
    shape = rng.normal(scale=0.5, size=10)
    with torch.no_grad():
        out = hand(torch.as_tensor(pose[None], dtype=torch.float32), torch.as_tensor(shape[None], dtype=torch.float32))
    kps = out.keypoints[0].double().numpy()
    offset = np.asarray(center, np.float64) + rng.uniform(-0.01, 0.01, 3) - (kps[0] + kps[9]) / 2
    return pose, shape, out.vertices[0].double().numpy() + offset, kps + offset


def render(vertices, K, size: int = SIZE, label: int = 1, image=None, labels=None):
    """Painter's-algorithm polygon render: (RGB uint8 image, uint8 label map with ``label`` on the hand)."""
    faces = open_hand().faces.numpy()
    uv = project_points(vertices, K)
    image = np.full((size, size, 3), 40, np.uint8) if image is None else image
    labels = np.zeros((size, size), np.uint8) if labels is None else labels
    depth = vertices[faces].mean(1)[:, 2]
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    shade = np.abs(normals[:, 2]) / (np.linalg.norm(normals, axis=1) + 1e-12)
    for fi in np.argsort(-depth):
        poly = np.rint(uv[faces[fi]] * 4).astype(np.int32)  # 2 fractional bits
        c = int(80 + 170 * shade[fi])
        cv2.fillConvexPoly(image, poly, (c, int(c * 0.8), int(c * 0.6)), lineType=cv2.LINE_8, shift=2)
        cv2.fillConvexPoly(labels, poly, int(label), lineType=cv2.LINE_8, shift=2)
    return image, labels


def write_png(path, rgb):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)


def write_json(path, obj):
    Path(path).write_text(json.dumps(obj))


def make_hands(n: int, seed: int = 0, size: int = SIZE):
    """n posed, rendered hands: list of dicts (pose, shape, vertices, keypoints, K, image, mask)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pose, shape, verts, kps = posed_hand(rng)
        K = camera(size)
        image, mask = render(verts, K, size)
        out.append(dict(pose=pose, shape=shape, vertices=verts, keypoints=kps, K=K, image=image, mask=mask))
    return out


def write_freihand(root, hands, split: str = "training", versions: int = 1, masks: bool = True, xyz: bool = True,
                   verts: bool = True, scale: bool = True, pose_json: bool = False, meta=None, mano=None):
    """Write ``hands`` (from :func:`make_hands`) in FreiHAND layout; version k of sample i is the image with
    its colours rolled by k. Returns the root."""
    root = Path(root)
    n = len(hands)
    for k in range(versions):
        for i, h in enumerate(hands):
            write_png(root / split / "rgb" / f"{i + n * k:08d}.png", np.roll(h["image"], k, axis=2))
    if masks:
        for i, h in enumerate(hands):
            write_png(root / split / "mask" / f"{i:08d}.png", h["mask"] * 255)
    write_json(root / f"{split}_K.json", [h["K"].tolist() for h in hands])
    if xyz:
        write_json(root / f"{split}_xyz.json", [h["keypoints"].tolist() for h in hands])
    if verts:
        write_json(root / f"{split}_verts.json", [h["vertices"].tolist() for h in hands])
    if scale:
        write_json(root / f"{split}_scale.json",
                   [float(np.linalg.norm(h["keypoints"][9] - h["keypoints"][10])) for h in hands])
    if pose_json:
        write_json(root / f"{split}_pose.json", [{"pose": h["pose"].reshape(-1).tolist(), "shape": h["shape"].tolist(),
                                                 "root": h["keypoints"][0].tolist()} for h in hands])
    if meta is not None:
        write_json(root / f"{split}_meta.json", meta)
    if mano is not None:
        write_json(root / f"{split}_mano.json", [[list(map(float, m))] for m in mano])
    return root


def write_pickle(path, obj, protocol: int = 2):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
