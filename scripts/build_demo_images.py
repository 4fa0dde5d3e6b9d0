"""Build the demo images bundled in handrecon/assets/demo: held-out synthetic renders (a seed the training
never uses) with their intrinsics and camera-space labels, so `handrecon demo` can show predictions next to
the truth on a fresh install.

    .venv/bin/python scripts/build_demo_images.py          # rewrites handrecon/assets/demo/
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from handrecon.synth import SceneConfig, SceneGenerator

SEED = 20261121           # never used for training or evaluation sets
SIZE = 320
NUM = 6
OUT = Path(__file__).resolve().parents[1] / "handrecon" / "assets" / "demo"


def main() -> None:
    gen = SceneGenerator(seed=SEED, config=SceneConfig(size=SIZE, left_probability=0.35))
    OUT.mkdir(parents=True, exist_ok=True)
    labels = []
    index = 0
    while len(labels) < NUM:
        s = gen.generate([index])[0]
        index += 1
        # demo-worthy: the hand mostly visible and not tiny
        x0, y0 = s["keypoints_2d"].min(0)
        x1, y1 = s["keypoints_2d"].max(0)
        if s["visible"].mean() < 0.6 or max(x1 - x0, y1 - y0) < 0.3 * SIZE:
            continue
        name = f"hand_{len(labels):02d}.jpg"
        cv2.imwrite(str(OUT / name), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        labels.append({
            "file": name, "left": bool(s["left"]), "index": index - 1,
            "K": np.round(s["K"].astype(float), 4).tolist(),
            "keypoints": np.round(s["keypoints"].astype(float), 6).tolist(),
            "vertices": np.round(s["vertices"].astype(float), 6).tolist(),
        })
    (OUT / "labels.json").write_text(json.dumps({"seed": SEED, "size": SIZE, "samples": labels}))
    print(f"wrote {len(labels)} images and labels.json to {OUT}")


if __name__ == "__main__":
    main()
