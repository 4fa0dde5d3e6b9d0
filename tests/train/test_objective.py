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


def test_canonical_mesh_compares_the_decoder_output_with_the_label_turned_back_by_its_rotation():
    from handrecon.hand.lbs import axis_angle_to_matrix

    torch.manual_seed(0)
    B = 3
    canonical = torch.randn(B, 778, 3) * 0.05
    pose = torch.zeros(B, 16, 3)
    pose[:, 0] = torch.randn(B, 3)
    R = axis_angle_to_matrix(pose[:, 0])
    batch = {"vertices_rel": canonical @ R.transpose(1, 2), "pose": pose,
             "has_vertices": torch.ones(B), "has_pose": torch.ones(B)}
    out = {"vertices": torch.zeros(B, 778, 3), "global_rotation": torch.eye(3).expand(B, 3, 3),
           "vertices_canonical": canonical.clone()}
    objective = Objective(LossConfig(mesh=[0.0], canonical_mesh=1.0), out.keys(), load_hand_model("open"))
    assert objective.weights == {"canonical_mesh": 1.0} and "vertices_canonical" in objective.used_outputs
    assert objective(out, batch)["canonical_mesh"].item() < 1e-7
    # off by 1 cm in x on the first sample only, which alone has a pose label: 1/3 cm per coordinate
    out["vertices_canonical"] = canonical + torch.tensor([0.01, 0.0, 0.0])
    batch["has_pose"] = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(objective(out, batch)["canonical_mesh"], torch.tensor(0.01 / 3))
    # a model without the rotation head cannot feed the term
    plain = Objective(LossConfig(mesh=[1.0], canonical_mesh=1.0), ["vertices"], load_hand_model("open"))
    assert plain.skipped == ["canonical_mesh"]
