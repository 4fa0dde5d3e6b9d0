"""A contact sheet of synthetic samples: image with its visible keypoints, and its mask."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from handrecon.fileio import atomic_path

__all__ = ["sample_sheet"]


def sample_sheet(path, samples: list[dict], columns: int = 6) -> Path:
    """Write a PNG grid: each tile is a sample's image with the skeleton of its visible keypoints (hidden
    ones are left out), above its hand mask."""
    from handrecon.render.overlay import draw_keypoints

    if not samples:
        raise ValueError("samples must hold at least one sample")
    tiles = []
    for s in samples:
        image = draw_keypoints(s["image"], s["keypoints_2d"], visible=s["visible"] > 0.5)
        mask = np.zeros_like(s["image"])
        mask[s["mask"].astype(bool)] = (250, 200, 170)
        tiles.append(np.concatenate([image, mask], axis=0))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    sheet = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", sheet[..., ::-1])
        Path(tmp).write_bytes(buf.tobytes())
    return path
