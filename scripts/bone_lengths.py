"""Bone lengths of a model's predicted keypoints against the labels: where the prediction shortens the hand.

    .venv/bin/python scripts/bone_lengths.py outputs/final/eval_bundled_full/pred.json data/synth-eval-s7-full

PRED is the FreiHAND-format ``pred.json`` ([keypoints, vertices]) that ``handrecon eval --out`` writes for DATA
(a set in the FreiHAND layout with ``<split>_xyz.json``). Prints, per bone of the skeleton
(``handrecon.hand.keypoints.BONES``), the mean labelled and predicted lengths and the ratio of the two means;
then the same per segment averaged over the four fingers; the scale that PA-MPJPE's similarity alignment
applies to the prediction (above 1: the alignment enlarges it); the aligned error per keypoint level; and
PA-MPJPE with each predicted bone set to its labelled length along its predicted direction, which tells a
wrong length from a wrong bend. A network that is unsure how a finger bends
regresses its joints towards the average over the bends it cannot tell apart, which is shorter than any one
of them, and more so the farther along the finger; the per-bone ratios show how much.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from handrecon.hand.keypoints import BONES, KEYPOINT_LEVELS, KEYPOINT_NAMES
from handrecon.evaluate import read_pred_json
from handrecon.metrics import procrustes_align

SEGMENTS = ("metacarpal", "proximal", "middle", "distal")


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """(N,21,3) keypoints -> (N,20) length of each bone in ``BONES`` order."""
    parents, children = (np.array(i) for i in zip(*BONES))
    return np.linalg.norm(keypoints[:, children] - keypoints[:, parents], axis=-1)


def with_bone_lengths(keypoints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N,21,3) keypoints rebuilt from the wrist out with each bone's direction kept and its length set to
    ``lengths`` (N,20), ``BONES`` order."""
    out = keypoints.copy()
    for b, (parent, child) in enumerate(BONES):  # parents come before their children
        direction = keypoints[:, child] - keypoints[:, parent]
        direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
        out[:, child] = out[:, parent] + direction * lengths[:, b:b + 1]
    return out


def _spread(keypoints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(keypoints - keypoints.mean(axis=1, keepdims=True), axis=(1, 2))


def compare(pred: np.ndarray, labelled: np.ndarray) -> dict[str, np.ndarray]:
    """Mean bone lengths (metres, (20,)) of ``pred`` and ``labelled`` (N,21,3), their ratio, the ratio per finger
    segment over the four fingers ((4,), ``SEGMENTS``), the factor by which PA-MPJPE's alignment scales each
    predicted hand ((N,)), the aligned error of the wrist and of each keypoint level (metres, (5,): wrist,
    then ``KEYPOINT_LEVELS`` from the finger bases to the tips), PA-MPJPE (metres), and PA-MPJPE with every
    predicted bone set to its labelled length along its predicted direction."""
    if pred.shape != labelled.shape or pred.ndim != 3 or pred.shape[1:] != (21, 3):
        raise ValueError(f"pred and labelled must both have shape (N, 21, 3); got {pred.shape} and {labelled.shape}")
    predicted, label = bone_lengths(pred).mean(axis=0), bone_lengths(labelled).mean(axis=0)
    ratio = predicted / label
    fingers = ratio[4:].reshape(4, 4)  # BONES: thumb's four, then index, middle, ring, little, base to tip
    aligned = procrustes_align(pred, labelled)
    errors = np.linalg.norm(aligned - labelled, axis=-1).mean(axis=0)
    relengthened = procrustes_align(with_bone_lengths(pred, bone_lengths(labelled)), labelled)
    return {"predicted": predicted, "labelled": label, "ratio": ratio, "segment_ratio": fingers.mean(axis=0),
            "alignment_scale": _spread(aligned) / _spread(pred),
            "level_error": np.array([errors[0]] + [errors[list(level)].mean() for level in KEYPOINT_LEVELS]),
            "pa_mpjpe": errors.mean(),
            "pa_mpjpe_labelled_lengths": np.linalg.norm(relengthened - labelled, axis=-1).mean()}


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pred", type=Path, help="pred.json of handrecon eval on DATA")
    parser.add_argument("data", type=Path, help="the evaluated set (FreiHAND layout)")
    parser.add_argument("--split", default="evaluation")
    args = parser.parse_args(argv)
    try:
        pred, _ = read_pred_json(args.pred)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    labels = args.data / f"{args.split}_xyz.json"
    if not labels.is_file():
        raise SystemExit(f"data: no file {labels}")
    labelled = np.asarray(json.loads(labels.read_text()), np.float64)
    if len(pred) != len(labelled):
        raise SystemExit(f"{args.pred} holds {len(pred)} predictions, {args.data} ({args.split}) {len(labelled)}")
    try:
        result = compare(pred, labelled)
    except ValueError as exc:
        raise SystemExit(f"{args.pred}: {exc}") from None
    print(f"{'bone':<24} {'labelled mm':>11} {'predicted mm':>12} {'ratio':>6}")
    for (parent, child), lab, prd, r in zip(BONES, result["labelled"], result["predicted"], result["ratio"]):
        print(f"{KEYPOINT_NAMES[parent] + ' - ' + KEYPOINT_NAMES[child]:<24} {1000 * lab:11.1f} {1000 * prd:12.1f} "
              f"{r:6.3f}")
    print("four fingers, per segment: " + ", ".join(f"{s} {r:.3f}" for s, r in zip(SEGMENTS, result["segment_ratio"])))
    scale = result["alignment_scale"]
    print(f"PA alignment scales the prediction by {scale.mean():.3f} on average (median {np.median(scale):.3f})")
    print("aligned error (mm): " + ", ".join(f"{name} {1000 * e:.1f}" for name, e in
                                             zip(("wrist", "finger bases", "2nd joints", "3rd joints", "tips"),
                                                 result["level_error"])))
    print(f"PA-MPJPE {1000 * result['pa_mpjpe']:.2f} mm; with each bone at its labelled length along the predicted "
          f"direction {1000 * result['pa_mpjpe_labelled_lengths']:.2f} mm")
    return result


if __name__ == "__main__":
    main()
