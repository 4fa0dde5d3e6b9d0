"""The objective supervises every stack's maps: ``heatmaps`` plus each ``stack{k}_heatmaps`` (CMR)."""

import torch

from handrecon import losses
from handrecon.hand import load_hand_model
from handrecon.train.config import LossConfig
from handrecon.train.objective import Objective


def test_stack_maps_are_supervised_with_the_final_ones():
    torch.manual_seed(0)
    B = 2
    out = {"vertices": torch.zeros(B, 778, 3), "heatmaps": torch.randn(B, 21, 8, 8),
           "stack1_heatmaps": torch.randn(B, 21, 8, 8), "silhouette": torch.randn(B, 1, 8, 8),
           "stack1_silhouette": torch.randn(B, 1, 8, 8), "stacked_heatmaps": torch.randn(B, 21, 8, 8)}
    batch = {"heatmaps": torch.rand(B, 21, 8, 8), "silhouette": torch.rand(B, 1, 8, 8),
             "has_keypoints_2d": torch.ones(B), "has_mask": torch.ones(B)}
    objective = Objective(LossConfig(mesh=[0.0], heatmap=10.0, silhouette=0.5), out.keys(), load_hand_model("open"))
    assert {"heatmaps", "stack1_heatmaps", "silhouette", "stack1_silhouette"} <= objective.used_outputs
    assert "stacked_heatmaps" not in objective.used_outputs  # only stack{k}_ names count
    terms = objective(out, batch)
    expected = sum(losses.heatmap_bce(out[k], batch["heatmaps"], valid=batch["has_keypoints_2d"])
                   for k in ("heatmaps", "stack1_heatmaps"))
    torch.testing.assert_close(terms["heatmap"], expected)
    expected = sum(losses.silhouette_bce(out[k], batch["silhouette"], valid=batch["has_mask"])
                   for k in ("silhouette", "stack1_silhouette"))
    torch.testing.assert_close(terms["silhouette"], expected)
