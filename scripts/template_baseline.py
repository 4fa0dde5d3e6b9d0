"""Score a constant hand (one named pose of the open hand, the same for every image) on a FreiHAND-layout split.

    .venv/bin/python scripts/template_baseline.py data/synth-eval-s7 [--split evaluation] [--pose relaxed]

The floor a mesh model must beat on the Procrustes-aligned metrics: alignment removes the rotation, scale and
position, so a constant hand is scored on how well its articulation matches the labelled one on average.
Prints PA-MPJPE, PA-MPVPE (mm) and the aligned F@5 / F@15 mm, the numbers of ``handrecon eval``'s scores.json,
for each pose asked for (``--pose`` may be repeated; default: relaxed, flat, fist).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from handrecon import metrics
from handrecon.data import FreiHAND
from handrecon.hand import load_hand_model


def constant_scores(dataset: FreiHAND, pose_name: str) -> dict[str, float]:
    """Aligned scores of the open hand in ``pose_name`` (mean shape) against every labelled sample."""
    if dataset.xyz is None or dataset.verts is None:
        raise SystemExit(f"{dataset.root}: the {dataset.split} split has no keypoint and vertex labels")
    hand = load_hand_model("open")
    with torch.no_grad():
        out = hand(hand.named_pose(pose_name)[None])
    n = len(dataset.xyz)
    gt_kp, gt_v = np.asarray(dataset.xyz, np.float64), np.asarray(dataset.verts, np.float64)
    kp = np.broadcast_to(out.keypoints[0].double().numpy(), gt_kp.shape)
    v = np.broadcast_to(out.vertices[0].double().numpy(), gt_v.shape)
    aligned = metrics.procrustes_align(v, gt_v)
    return {
        "samples": n,
        "pa_mpjpe_mm": 1000 * float(np.mean(metrics.pa_mpjpe(kp, gt_kp))),
        "pa_mpvpe_mm": 1000 * float(np.mean(metrics.pa_mpvpe(v, gt_v))),
        "f5_aligned": float(np.mean(metrics.f_score(aligned, gt_v, 0.005))),
        "f15_aligned": float(np.mean(metrics.f_score(aligned, gt_v, 0.015))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a FreiHAND-layout folder (e.g. written by handrecon synth)")
    parser.add_argument("--split", default="evaluation", choices=("training", "evaluation"))
    parser.add_argument("--pose", action="append", help="a named pose of the open hand (repeatable)")
    args = parser.parse_args()
    dataset = FreiHAND(args.data, args.split)
    print("| constant hand | PA-MPJPE (mm) | PA-MPVPE (mm) | F@5 | F@15 |")
    print("|---|---|---|---|---|")
    for name in args.pose or ["relaxed", "flat", "fist"]:
        s = constant_scores(dataset, name)
        print(f"| {name} ({s['samples']} samples) | {s['pa_mpjpe_mm']:.1f} | {s['pa_mpvpe_mm']:.1f} | "
              f"{s['f5_aligned']:.3f} | {s['f15_aligned']:.3f} |")


if __name__ == "__main__":
    main()
