"""Training losses (handrecon.losses): values, weighting by valid/visibility, gradients, invariances, checks."""

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handrecon import losses as L
from handrecon.hand import load_hand_model
from handrecon.mesh import load_topology


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open")


@pytest.fixture(scope="module")
def meshes(hand):
    """Two posed open-hand meshes (B=2, 778, 3), metres, and the faces."""
    g = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(2, 16, 3, generator=g)
    shape = 0.5 * torch.randn(2, 10, generator=g)
    with torch.no_grad():
        out = hand(pose, shape)
    return out.vertices, out.keypoints, hand.faces


def _random_rotation(b, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(b, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))[:, None, None]  # proper rotations
    return q.float()


def _crop_affine(angle_deg, scale, center, shift):
    """OpenCV's rotation (degrees, counter-clockwise on screen) about ``center`` with ``scale``, then a shift."""
    m = cv2.getRotationMatrix2D(center, angle_deg, scale)
    m[:, 2] += shift
    return torch.from_numpy(m).float()


# ----------------------------------------------------------------------------------------------------------
# hand-computed values
# ----------------------------------------------------------------------------------------------------------
def test_mesh_l1_value_and_valid_weighting():
    pred = torch.zeros(1, 2, 3)
    target = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, -6.0]]])
    assert L.mesh_l1(pred, target).item() == pytest.approx(2.0)
    assert L.mesh_l1(pred, pred).item() == 0.0

    pred = torch.zeros(2, 4, 3)
    target = torch.stack([torch.full((4, 3), 1.0), torch.full((4, 3), -3.0)])
    assert L.mesh_l1(pred, target).item() == pytest.approx(2.0)
    assert L.mesh_l1(pred, target, valid=torch.tensor([True, False])).item() == pytest.approx(1.0)
    assert L.mesh_l1(pred, target, valid=torch.tensor([0.0, 1.0])).item() == pytest.approx(3.0)
    assert L.mesh_l1(pred, target, valid=torch.tensor([1.0, 3.0])).item() == pytest.approx(2.5)
    # an unlabelled sample may hold NaN: it is ignored, value and gradient stay finite
    target[1] = float("nan")
    pred.requires_grad_(True)
    loss = L.mesh_l1(pred, target, valid=torch.tensor([True, False]))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(pred.grad).all() and (pred.grad[1] == 0).all()


def test_multilevel_mesh_l1_sums_levels_with_weights(hand, meshes):
    topo = load_topology(hand)
    verts = meshes[0]
    targets = [verts]
    for down in topo.down:
        b, v, _ = targets[-1].shape
        flat = targets[-1].permute(1, 0, 2).reshape(v, b * 3)
        targets.append(torch.sparse.mm(down, flat).reshape(-1, b, 3).permute(1, 0, 2))
    assert [t.shape[1] for t in targets] == topo.num_vertices
    preds = [t + 0.001 * (i + 1) for i, t in enumerate(targets)]  # level i off by (i+1) mm per coordinate
    assert L.multilevel_mesh_l1(targets, targets).item() == 0.0
    assert L.multilevel_mesh_l1(preds, targets).item() == pytest.approx(0.001 * (1 + 2 + 3 + 4 + 5), rel=1e-4)
    w = [1.0, 0.5, 0.0, 0.0, 2.0]
    assert L.multilevel_mesh_l1(preds, targets, weights=w).item() == pytest.approx(
        0.001 * (1 + 1 + 10), rel=1e-4
    )
    with pytest.raises(ValueError, match="weights"):
        L.multilevel_mesh_l1(preds, targets, weights=[1.0])
    with pytest.raises(ValueError, match="targets"):
        L.multilevel_mesh_l1(preds, targets[:-1])
    with pytest.raises(ValueError, match=r"targets\[2\]"):
        L.multilevel_mesh_l1(preds, targets[:2] + [targets[3]] + targets[3:])


def test_keypoint_3d_l1_regresses_from_the_mesh(hand, meshes):
    verts, kps, _ = meshes
    reg = hand.keypoint_regressor
    assert L.keypoint_3d_l1(verts, kps, reg).item() == pytest.approx(0.0, abs=1e-7)
    assert L.keypoint_3d_l1(verts, kps + 0.01, reg).item() == pytest.approx(0.01, rel=1e-4)
    assert L.keypoint_3d_l1(verts, kps + 0.01, reg.to_sparse()).item() == pytest.approx(0.01, rel=1e-4)
    # tiny hand-made regressor: keypoint 0 = mean of vertices 0 and 1, keypoint 1 = vertex 2
    v = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])
    r = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    t = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    assert L.keypoint_3d_l1(v, t, r).item() == pytest.approx(3.0 / 6.0)
    assert L.keypoint_l1(kps, kps + 0.02).item() == pytest.approx(0.02, rel=1e-4)
    assert L.keypoint_mse(torch.zeros(1, 2, 3), torch.tensor([[[1.0, 2.0, 2.0], [0.0, 0.0, 1.0]]])).item() == (
        pytest.approx((9.0 + 1.0) / 2)
    )


def test_keypoint_2d_losses_with_visibility():
    pred = torch.zeros(2, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [3.0, 3.0]], [[5.0, 5.0], [7.0, 7.0]]])
    assert L.keypoint_2d_l1(pred, target).item() == pytest.approx(4.0)
    weight = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert L.keypoint_2d_l1(pred, target, weight=weight).item() == pytest.approx(1.0)
    weight = torch.tensor([[True, True], [True, False]])
    assert L.keypoint_2d_l1(pred, target, weight=weight).item() == pytest.approx(3.0)
    assert L.keypoint_2d_l1(pred, target, weight=weight, valid=torch.tensor([False, True])).item() == (
        pytest.approx(5.0)
    )
    assert L.keypoint_2d_mse(pred, target, weight=torch.tensor([[1.0, 0.0], [0.0, 0.0]])).item() == (
        pytest.approx(2.0)
    )


def test_heatmap_and_silhouette_values():
    logits = torch.zeros(1, 2, 3, 3)
    half = torch.full((1, 2, 3, 3), 0.5)
    assert L.heatmap_bce(logits, half).item() == pytest.approx(math.log(2.0))
    # numerically stable at large logits
    big = torch.full((1, 1, 2, 2), 100.0)
    assert L.heatmap_bce(big, torch.ones(1, 1, 2, 2)).item() == pytest.approx(0.0, abs=1e-6)
    assert L.heatmap_bce(-big, torch.ones(1, 1, 2, 2)).item() == pytest.approx(100.0)
    # matches torch on random data; per-joint weight keeps only joint 0
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    assert L.heatmap_bce(x, t).item() == pytest.approx(F.binary_cross_entropy_with_logits(x, t).item())
    w = torch.zeros(2, 3)
    w[:, 0] = 1
    assert L.heatmap_bce(x, t, weight=w).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(x[:, :1], t[:, :1]).item()
    )
    assert L.heatmap_mse(x, t).item() == pytest.approx(F.mse_loss(x, t).item())
    assert L.heatmap_mse(torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]])).item() == (
        pytest.approx(10.0 / 4)
    )

    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, 1:3, 1:3] = True
    sil = torch.where(mask, 50.0, -50.0)
    assert L.silhouette_bce(sil, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert L.silhouette_bce(sil[:, None], mask).item() == pytest.approx(0.0, abs=1e-6)
    assert L.silhouette_bce(torch.zeros(2, 1, 4, 4), mask[:, None]).item() == pytest.approx(math.log(2.0))
    assert L.silhouette_l1(mask.float(), mask).item() == 0.0
    assert L.silhouette_l1(torch.ones(2, 4, 4), mask, valid=torch.tensor([1.0, 0.0])).item() == (
        pytest.approx(12.0 / 16)
    )


# ----------------------------------------------------------------------------------------------------------
# normal and edge losses on the real hand mesh
# ----------------------------------------------------------------------------------------------------------
def test_normal_and_edge_on_one_triangle():
    faces = torch.tensor([[0, 1, 2]])
    target = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    pred = target.clone()
    pred[0, 2, 2] = 1.0  # lift c out of the plane: edges b-a, c-a, c-b have |cos| 0, 1/sqrt2, 1/sqrt3
    expected = (0.0 + 1 / math.sqrt(2) + 1 / math.sqrt(3)) / 3
    assert L.normal_loss(pred, target, faces).item() == pytest.approx(expected, rel=1e-6)
    assert L.edge_length_loss(2 * target, target, faces).item() == pytest.approx((2 + math.sqrt(2)) / 3)


def test_normal_loss_zero_under_translation_positive_under_deformation(meshes):
    verts, _, faces = meshes
    moved = verts + torch.tensor([0.05, -0.02, 0.4])
    assert L.normal_loss(moved, verts, faces).item() < 1e-5
    g = torch.Generator().manual_seed(2)
    noisy = verts + 0.002 * torch.randn(verts.shape, generator=g)
    assert L.normal_loss(noisy, verts, faces).item() > 0.05


def test_edge_length_loss_invariant_to_rigid_motion(meshes):
    verts, _, faces = meshes
    rot = _random_rotation(2, seed=3)
    moved = verts @ rot.transpose(1, 2) + torch.tensor([[[0.1, 0.2, 0.5]], [[-0.1, 0.0, 0.7]]])
    assert L.edge_length_loss(moved, verts, faces).item() < 1e-6
    assert L.edge_length_loss(verts, moved, faces).item() < 1e-6
    g = torch.Generator().manual_seed(4)
    noisy = verts + 0.002 * torch.randn(verts.shape, generator=g)
    assert L.edge_length_loss(noisy, verts, faces).item() > 5e-4


# ----------------------------------------------------------------------------------------------------------
# MobRecon consistency
# ----------------------------------------------------------------------------------------------------------
def test_consistency_2d_zero_for_transformed_view_and_positive_otherwise():
    g = torch.Generator().manual_seed(5)
    kp1 = 40 + 160 * torch.rand(2, 21, 2, generator=g)  # pixels of a 224 crop
    affine = torch.stack(
        [_crop_affine(30.0, 1.2, (112.0, 112.0), (3.0, -5.0)), _crop_affine(-75.0, 0.8, (112.0, 112.0), (0, 0))]
    )
    # view 2 as OpenCV maps the points
    kp2 = torch.from_numpy(
        np.stack([cv2.transform(kp1[i].numpy()[:, None], affine[i].numpy())[:, 0] for i in range(2)])
    ).float()
    assert L.consistency_2d(kp1, kp2, affine).item() < 1e-4
    assert L.consistency_2d(kp1, kp2 + 2.0, affine).item() == pytest.approx(2.0, rel=1e-4)
    assert L.consistency_2d(kp1, kp2 + 2.0, affine, crop_size=224).item() == pytest.approx(2.0 / 224, rel=1e-4)
    sizes = torch.tensor([224.0, 112.0])
    assert L.consistency_2d(kp1, kp2 + 2.0, affine, crop_size=sizes).item() == pytest.approx(
        (2.0 / 224 + 2.0 / 112) / 2, rel=1e-4
    )
    assert L.consistency_2d(kp1, kp1, affine).item() > 1.0
    # identity affine, hand-computed
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    assert L.consistency_2d(kp1, kp1 + torch.tensor([1.0, 3.0]), eye).item() == pytest.approx(2.0, rel=1e-5)


def test_rotation_l1_is_zero_for_the_same_rotation_and_ignores_unlabelled_samples():
    from handrecon.hand.lbs import axis_angle_to_matrix

    R = axis_angle_to_matrix(torch.tensor([[0.2, -0.4, 1.0], [0.0, 0.0, 0.0]]))
    assert L.rotation_l1(R, R).item() == 0.0
    flipped = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi]] * 2))  # 180 degrees about z
    eye = torch.eye(3).expand(2, 3, 3)
    assert L.rotation_l1(flipped, eye).item() == pytest.approx(4.0 / 9.0, abs=1e-6)
    labels = torch.stack([R[0], torch.full((3, 3), float("nan"))])  # sample 1 has no pose label
    assert L.rotation_l1(R, labels, valid=torch.tensor([1.0, 0.0])).item() == 0.0


def test_rotation_from_affine_matches_the_image_rotation():
    affine = _crop_affine(30.0, 1.7, (100.0, 80.0), (4.0, 9.0))[None]
    r = L.rotation_from_affine(affine)[0]
    assert torch.allclose(r[:2, :2] * 1.7, affine[0, :, :2], atol=1e-5)
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-6)
    assert r[2, 2].item() == 1.0 and torch.linalg.det(r).item() == pytest.approx(1.0)


def test_consistency_3d_zero_for_rotated_view_and_positive_otherwise(meshes):
    verts, kps, _ = meshes
    rel = verts - kps[:, :1]  # root-relative (wrist)
    affine = torch.stack(
        [_crop_affine(45.0, 1.1, (112.0, 112.0), (0, 0)), _crop_affine(-120.0, 0.9, (112.0, 112.0), (5, 5))]
    )
    rot = L.rotation_from_affine(affine)
    view2 = rel @ rot.transpose(1, 2)
    assert L.consistency_3d(rel, view2, rot).item() < 1e-7
    assert L.consistency_3d(rel, view2, rot[:, :2, :2]).item() < 1e-7
    assert L.consistency_3d(rel, rel, rot).item() > 1e-3
    # camera-space vertices with their roots subtracted inside
    root1, root2 = torch.tensor([[0.0, 0.1, 0.5], [0.1, 0.0, 0.6]]), torch.tensor([[0.2, 0.0, 0.4], [0, 0, 1.0]])
    assert L.consistency_3d(rel + root1[:, None], view2 + root2[:, None], rot, root_view1=root1,
                            root_view2=root2).item() < 1e-6
    assert L.consistency_3d(rel, view2 + 0.003, rot).item() == pytest.approx(0.003, rel=1e-3)


# ----------------------------------------------------------------------------------------------------------
# gradients, no-valid samples, total, checks
# ----------------------------------------------------------------------------------------------------------
def _cases(hand, meshes):
    verts, kps, faces = meshes
    g = torch.Generator().manual_seed(6)
    noisy = verts + 0.003 * torch.randn(verts.shape, generator=g)
    kp2 = torch.rand(2, 21, 2, generator=g)
    aff = torch.stack([_crop_affine(20.0, 1.0, (112.0, 112.0), (0, 0))] * 2)
    hm = torch.rand(2, 21, 8, 8, generator=g)
    sil = torch.rand(2, 1, 8, 8, generator=g) > 0.5
    rot = L.rotation_from_affine(aff)
    # (name, function of the prediction, prediction)
    return [
        ("mesh_l1", lambda p, v: L.mesh_l1(p, verts, valid=v), noisy),
        ("multilevel", lambda p, v: L.multilevel_mesh_l1([p, p[:, :49]], [verts, verts[:, :49]], valid=v), noisy),
        ("keypoint_3d_l1", lambda p, v: L.keypoint_3d_l1(p, kps, hand.keypoint_regressor, valid=v), noisy),
        ("keypoint_l1", lambda p, v: L.keypoint_l1(p, kps, valid=v), kps + 0.01),
        ("keypoint_mse", lambda p, v: L.keypoint_mse(p, kps, valid=v), kps + 0.01),
        ("keypoint_2d_l1", lambda p, v: L.keypoint_2d_l1(p, kp2, valid=v), kp2 + 0.1),
        ("keypoint_2d_mse", lambda p, v: L.keypoint_2d_mse(p, kp2, valid=v), kp2 + 0.1),
        ("heatmap_bce", lambda p, v: L.heatmap_bce(p, hm, valid=v), torch.zeros(2, 21, 8, 8)),
        ("heatmap_mse", lambda p, v: L.heatmap_mse(p, hm, valid=v), torch.zeros(2, 21, 8, 8)),
        ("silhouette_bce", lambda p, v: L.silhouette_bce(p, sil, valid=v), torch.zeros(2, 1, 8, 8)),
        ("silhouette_l1", lambda p, v: L.silhouette_l1(p, sil, valid=v), torch.full((2, 8, 8), 0.5)),
        ("normal_loss", lambda p, v: L.normal_loss(p, verts, faces, valid=v), noisy),
        ("edge_length_loss", lambda p, v: L.edge_length_loss(p, verts, faces, valid=v), noisy),
        ("consistency_2d", lambda p, v: L.consistency_2d(p, 224 * kp2, aff, valid=v), 224 * kp2 + 1),
        ("consistency_3d", lambda p, v: L.consistency_3d(p, verts, rot, valid=v), noisy),
        ("rotation_l1", lambda p, v: L.rotation_l1(p, rot, valid=v), rot.flip(-1)),
    ]


def test_every_loss_has_a_gradient_and_is_zero_without_valid_samples(hand, meshes):
    for name, fn, pred in _cases(hand, meshes):
        p = pred.clone().requires_grad_(True)
        loss = fn(p, None)
        assert loss.ndim == 0 and loss.item() > 0, name
        loss.backward()
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name

        for valid in (torch.zeros(2, dtype=torch.bool), torch.zeros(2)):
            p = pred.clone().requires_grad_(True)
            loss = fn(p, valid)
            assert loss.item() == 0.0 and not torch.isnan(loss), name
            loss.backward()
            assert p.grad is not None and (p.grad == 0).all(), name

        # one valid sample: the loss of that sample alone
        p = pred.clone()
        half = fn(p, torch.tensor([True, False]))
        assert torch.isclose(half, fn(p, torch.tensor([1.0, 0.0]))), name
        assert half.item() > 0, name


def test_total_loss_weights_logs_and_rejects_unknown_terms():
    a = torch.tensor(2.0, requires_grad=True)
    terms = {"mesh": a * 1.0, "normal": a * 0.5, "sil": torch.tensor(float("nan"))}
    total, log = L.total_loss(terms, {"mesh": 1.0, "normal": 0.1, "sil": 0.0, "edge": 1.0})
    assert total.item() == pytest.approx(2.0 + 0.1)
    assert log == pytest.approx({"mesh": 2.0, "normal": 1.0, "total": 2.1})
    total.backward()
    assert a.grad.item() == pytest.approx(1.05)
    with pytest.raises(ValueError, match="'typo'"):
        L.total_loss({"mesh": a, "typo": a}, {"mesh": 1.0})
    with pytest.raises(ValueError, match="nonzero"):
        L.total_loss({"mesh": a}, {"mesh": 0.0})
    with pytest.raises(ValueError, match=r"terms\['mesh'\]"):
        L.total_loss({"mesh": torch.ones(3)}, {"mesh": 1.0})


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: L.mesh_l1(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2)), "pred"),
        (lambda: L.mesh_l1(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3)), "target"),
        (lambda: L.mesh_l1(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), valid=torch.ones(3)), "valid"),
        (lambda: L.multilevel_mesh_l1(torch.zeros(2, 5, 3), [torch.zeros(2, 5, 3)]), "preds"),
        (lambda: L.keypoint_3d_l1(torch.zeros(2, 5, 3), torch.zeros(2, 21, 3), torch.zeros(21, 4)), "regressor"),
        (lambda: L.keypoint_3d_l1(torch.zeros(2, 5), torch.zeros(2, 21, 3), torch.zeros(21, 5)), "pred_vertices"),
        (lambda: L.keypoint_3d_l1(torch.zeros(2, 5, 3), torch.zeros(3, 21, 3), torch.zeros(21, 5)),
         "target_keypoints"),
        (lambda: L.keypoint_2d_l1(torch.zeros(2, 21, 3), torch.zeros(2, 21, 3)), "pred"),
        (lambda: L.keypoint_2d_l1(torch.zeros(2, 21, 2), torch.zeros(2, 21, 2), weight=torch.ones(2, 20)),
         "weight"),
        (lambda: L.heatmap_bce(torch.zeros(2, 21, 8), torch.zeros(2, 21, 8)), "logits"),
        (lambda: L.heatmap_mse(torch.zeros(2, 21, 8, 8), torch.zeros(2, 21, 8, 4)), "target"),
        (lambda: L.silhouette_bce(torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8)), "logits"),
        (lambda: L.silhouette_bce(torch.zeros(2, 8, 8), torch.zeros(2, 8, 7)), "target"),
        (lambda: L.normal_loss(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), torch.zeros(1, 3)), "faces"),
        (lambda: L.edge_length_loss(torch.zeros(1, 3, 3), torch.zeros(1, 4, 3), torch.tensor([[0, 1, 2]])),
         "target"),
        (lambda: L.consistency_2d(torch.zeros(2, 21, 2), torch.zeros(2, 21, 2), torch.zeros(2, 3, 3)),
         "affine_1to2"),
        (lambda: L.consistency_2d(torch.zeros(2, 21, 2), torch.zeros(2, 20, 2), torch.zeros(2, 2, 3)),
         "kp2d_view2"),
        (lambda: L.consistency_3d(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.zeros(3, 3)),
         "rotation_1to2"),
        (lambda: L.consistency_3d(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.zeros(2, 3, 3),
                                  root_view1=torch.zeros(3)), "root_view1"),
        (lambda: L.rotation_from_affine(torch.zeros(2, 3, 3)), "affine"),
        (lambda: L.rotation_l1(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)), "pred"),
        (lambda: L.rotation_l1(torch.zeros(2, 3, 3), torch.zeros(1, 3, 3)), "target"),
    ],
)
def test_wrong_shapes_raise_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()
