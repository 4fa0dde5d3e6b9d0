"""How well each root method can do with perfect inputs: the camera-space root registered from a set's own
labels (the ground-truth root-relative mesh and keypoints, the labelled 2D keypoints and mask), grouped by
occlusion. Any error left is the method's, not a network's.

    .venv/bin/python scripts/root_oracle.py data/synth-eval-s7        # masks of the visible hand
    .venv/bin/python scripts/root_oracle.py data/synth-eval-s7-full   # masks of the full hand (--mask full)

The second set is the first rendered with ``handrecon synth ... --mask full`` (same seed, same images). On the
visible masks the 1D root of an occluded hand is far off even from perfect labels: the occluder cuts the
silhouette, the whole projected mesh no longer matches it, and the solve moves the hand away.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METHODS = ("2d", "1d", "adaptive")


def oracle_root_errors(data: str, split: str = "evaluation", num_axes: int = 12) -> dict[str, np.ndarray]:
    """Per-sample root errors (metres) of each of :data:`METHODS` registered from the labels of ``data``."""
    from handrecon.data import FreiHAND
    from handrecon.registration import register_root

    dataset = FreiHAND(data, split)
    V, kp, uv, K, masks, truth = [], [], [], [], [], []
    for i in range(len(dataset)):
        s = dataset[i]
        if not (s["has_vertices"] and s["has_mask"]):
            raise SystemExit(f"{data} ({split}) sample {i} has no {'mesh' if not s['has_vertices'] else 'mask'}")
        root = s["keypoints"][0]
        truth.append(root)
        V.append(s["vertices"] - root)
        kp.append(s["keypoints"] - root)
        uv.append(s["keypoints_2d"])
        K.append(s["K"])
        masks.append(s["mask"].astype(bool))
    result = register_root(np.stack(V).astype(np.float64), np.stack(kp).astype(np.float64),
                           np.stack(uv).astype(np.float64), np.stack(K).astype(np.float64), silhouette=masks,
                           num_axes=num_axes)
    truth = np.stack(truth)
    return {name: np.linalg.norm(np.asarray(root) - truth, axis=-1)
            for name, root in zip(METHODS, (result.root_2d, result.root_1d, result.root))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="a synthetic set written by handrecon synth (FreiHAND layout)")
    parser.add_argument("--split", default="evaluation")
    parser.add_argument("--num-axes", type=int, default=12)
    args = parser.parse_args()
    errors = oracle_root_errors(args.data, args.split, args.num_axes)
    meta = json.loads((Path(args.data) / f"{args.split}_meta.json").read_text())
    occluded = np.array([bool(m["occluded"]) for m in meta])
    print(f"Root from the labels of {args.data} ({args.split}), A = {args.num_axes}: mean (median) error in mm")
    print("| root | all | occluder | no occluder |\n|---|---|---|---|")
    for name in METHODS:
        e = errors[name] * 1000
        cells = [f"{e[sel].mean():.1f} ({np.median(e[sel]):.1f})" if sel.any() else "-"
                 for sel in (np.ones_like(occluded), occluded, ~occluded)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
