"""Reference scores that need no model: a constant hand, the floor any mesh model must beat.

>>> from handrecon.baselines import constant_hand_scores
>>> constant_hand_scores(FreiHAND("data/synth-eval-s7", "evaluation"), "relaxed")["pa_mpjpe_mm"]

The Procrustes-aligned metrics remove rotation, scale and position, so a prediction that ignores the image and
always answers the same hand is scored only on how far the labelled articulations are from it on average.
"""

from __future__ import annotations

import numpy as np
import torch

from handrecon import metrics

__all__ = ["constant_hand_scores"]


def constant_hand_scores(dataset, pose: str = "relaxed", hand_model=None) -> dict[str, float]:
    """Aligned scores of one hand for every sample of ``dataset``.

    Args:
        dataset: anything with ``xyz`` (N,21,3) and ``verts`` (N,778,3) labels (a :class:`handrecon.data.FreiHAND`
            split: real FreiHAND or a set written by ``handrecon synth``).
        pose: a named pose of ``hand_model`` (mean shape).
        hand_model: default the bundled open hand.

    Returns:
        ``samples``, ``pa_mpjpe_mm``, ``pa_mpvpe_mm``, ``pa_f5`` and ``pa_f15`` (aligned F-scores), as in
        :func:`handrecon.evaluate.evaluate`'s scores.

    Raises:
        ValueError: the dataset has no keypoint or vertex labels.
    """
    xyz, verts = getattr(dataset, "xyz", None), getattr(dataset, "verts", None)
    if xyz is None or verts is None:
        raise ValueError(f"dataset {getattr(dataset, 'root', dataset)!s} has no keypoint and vertex labels "
                         "(<split>_xyz.json and <split>_verts.json)")
    if hand_model is None:
        from handrecon.hand import load_hand_model

        hand_model = load_hand_model("open")
    with torch.no_grad():
        out = hand_model(hand_model.named_pose(pose)[None])
    gt_kp, gt_v = np.asarray(xyz, np.float64), np.asarray(verts, np.float64)
    kp = np.broadcast_to(out.keypoints[0].double().numpy(), gt_kp.shape)
    v = np.broadcast_to(out.vertices[0].double().numpy(), gt_v.shape)
    aligned = metrics.procrustes_align(v, gt_v)
    return {
        "samples": len(gt_kp),
        "pa_mpjpe_mm": 1000 * float(np.mean(metrics.pa_mpjpe(kp, gt_kp))),
        "pa_mpvpe_mm": 1000 * float(np.mean(metrics.pa_mpvpe(v, gt_v))),
        "pa_f5": float(np.mean(metrics.f_score(aligned, gt_v, 0.005))),
        "pa_f15": float(np.mean(metrics.f_score(aligned, gt_v, 0.015))),
    }
