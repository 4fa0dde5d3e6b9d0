"""The open hand model: template quality, dimensions, rig, shape space, outputs and input checks."""

import numpy as np
import pytest
import torch
import trimesh

from handrecon.hand import load_hand_model
from handrecon.hand.keypoints import FINGER_JOINTS, NUM_KEYPOINTS
from handrecon.hand.model import MANO_TIP_VERTICES, describe


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open")


@pytest.fixture(scope="module")
def template(hand):
    return trimesh.Trimesh(hand.v_template.numpy(), hand.faces.numpy(), process=False)


def test_template_is_a_clean_closed_surface(hand, template):
    assert hand.num_vertices == 778
    assert len(template.split(only_watertight=False)) == 1
    assert template.is_watertight and template.is_winding_consistent
    assert template.volume > 0  # outward normals
    assert template.euler_number == 2
    assert template.area_faces.min() > 1e-8  # no degenerate faces (m^2)
    assert len(np.unique(template.faces, axis=0)) == len(template.faces)


def test_natural_adult_dimensions(hand):
    d = describe(hand)
    assert 0.17 <= d["wrist_to_middle_tip"] <= 0.20
    assert 0.06 <= d["index_to_little_mcp"] <= 0.09


def test_fingertips_are_single_surface_vertices_at_mano_indices(hand):
    reg = hand.keypoint_regressor.numpy()
    for k, vid in zip((4, 8, 12, 16, 20), MANO_TIP_VERTICES):
        assert reg[k, vid] == 1.0 and np.count_nonzero(reg[k]) == 1
    # Each tip is (within 5 mm) the furthest vertex of its distal phalanx from the wrist.
    v = hand.v_template.numpy()
    w = hand.weights.numpy()
    kp = reg @ v
    for k, dip in zip((8, 12, 16, 20), (3, 6, 12, 9)):
        own = w[:, dip] > 0.5
        assert np.linalg.norm(kp[k] - kp[0]) > np.linalg.norm(v[own] - kp[0], axis=1).max() - 0.005


def test_keypoint_regressor_rows(hand):
    reg = hand.keypoint_regressor.numpy()
    assert reg.shape == (NUM_KEYPOINTS, 778)
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-6)
    assert (reg >= 0).all()


def test_regressed_joints_sit_inside_the_flesh(hand, template):
    joints = (hand.joint_regressor @ hand.v_template).numpy()
    assert template.contains(joints).all()


def test_skinning_weights_are_a_smooth_partition_of_unity(hand):
    w = hand.weights.numpy()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert (w >= 0).all()
    names = ("thumb", "index", "middle", "ring", "little")
    for name, ids in FINGER_JOINTS.items():
        tip_vertex = MANO_TIP_VERTICES[names.index(name)]
        assert w[tip_vertex, ids[2]] > 0.99
        # Every joint hands over to its child through a band of blended vertices, not a hard seam.
        for parent, child in ((0, ids[0]), (ids[0], ids[1]), (ids[1], ids[2])):
            blended = (w[:, parent] > 0.15) & (w[:, child] > 0.15)
            assert blended.sum() >= 4, (name, parent, child)
        # No digit's vertices listen to another digit's joints (no bleeding between neighbours).
        others = [j for n, js in FINGER_JOINTS.items() if n != name for j in js]
        assert w[w[:, ids[2]] > 0.5][:, others].max() < 0.01


def test_digits_have_nail_and_palm_sides(hand):
    """Cross-sections are not circles: the palm side is fuller than the nail side."""
    v = hand.v_template.numpy()
    w = hand.weights.numpy()
    kp = (hand.keypoint_regressor @ hand.v_template).numpy()
    for pip, dip, joint in ((6, 7, 2), (10, 11, 5), (14, 15, 11), (18, 19, 8)):
        mid = (kp[pip] + kp[dip]) / 2
        axis = (kp[dip] - kp[pip]) / np.linalg.norm(kp[dip] - kp[pip])
        ring = v[(np.abs((v - mid) @ axis) < 0.005) & (w[:, joint] > 0.5)]
        assert len(ring) >= 4
        dorsal = (ring - mid)[:, 1]  # +y is the back of the hand in the model frame
        assert dorsal.max() < -dorsal.min(), "palm side should bulge more than the nail side"


def _flex(hand, joint, angle):
    angles = torch.zeros(16, 3)
    angles[joint, 0] = angle
    return hand(hand.angles_to_pose(angles)[None])


@pytest.mark.parametrize("joint", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15])
def test_ninety_degree_flexion_has_no_collapse_and_stays_continuous(hand, joint):
    """LBS at 90 degrees (thumb joints: their flexion limit): the joint's cross-section keeps its size (no
    candy-wrapper collapse) and the displacement is continuous (no edge tears open), except for the short
    web edges between two digits, which stretch as skin does when one finger bends alone."""
    w = hand.weights.numpy()
    edges = trimesh.Trimesh(hand.v_template.numpy(), hand.faces.numpy(), process=False).edges_unique
    rest = hand()
    posed = _flex(hand, joint, min(np.pi / 2, float(hand.joint_limits[joint, 0, 1])))
    r, p = rest.vertices[0].numpy(), posed.vertices[0].numpy()
    ratio = np.linalg.norm(p[edges[:, 0]] - p[edges[:, 1]], axis=1) / \
        np.linalg.norm(r[edges[:, 0]] - r[edges[:, 1]], axis=1)
    digit_weight = np.stack([w[:, list(ids)].sum(1) for ids in FINGER_JOINTS.values()], 1)  # (V,5)
    digits = digit_weight > 0.1
    web = (digits[edges[:, 0]] | digits[edges[:, 1]]).sum(1) >= 2
    assert ratio[~web].max() < 3.2 and ratio.min() > 0.12
    # Cross-section at the joint: vertices that blend across it stay away from the posed joint centre.
    centre_r, centre_p = rest.joints[0, joint].numpy(), posed.joints[0, joint].numpy()
    near = (w[:, joint] > 0.2) & (w[:, joint] < 0.8)
    near &= np.linalg.norm(r - centre_r, axis=1) < 0.015
    d_rest = np.linalg.norm(r[near] - centre_r, axis=1)
    d_posed = np.linalg.norm(p[near] - centre_p, axis=1)
    assert near.sum() >= 3 and (d_posed > 0.45 * d_rest).all()


def test_knuckle_flexion_bends_the_palm_smoothly(hand):
    angles = torch.zeros(16, 3)
    angles[4, 0] = np.pi / 2  # middle MCP
    rest = hand().vertices[0].numpy()
    posed = hand(hand.angles_to_pose(angles)[None]).vertices[0].numpy()
    moved = np.linalg.norm(posed - rest, axis=1)
    kp = (hand.keypoint_regressor @ hand.v_template).numpy()
    along = (rest - kp[0]) @ (kp[9] - kp[0]) / np.linalg.norm(kp[9] - kp[0]) ** 2
    palm_near_knuckle = (along > 0.8) & (along < 1.0) & (np.abs(rest[:, 2] - kp[9, 2]) < 0.008)
    assert palm_near_knuckle.any() and moved[palm_near_knuckle].max() > 0.002  # the palm follows a little
    assert moved[along < 0.4].max() < 1e-6  # the heel of the hand does not move


def test_shape_space_is_rich_and_plausible(hand):
    assert hand.num_shape >= 10
    base = describe(hand)
    faces = hand.faces.numpy()
    rest_normals = trimesh.Trimesh(hand.v_template.numpy(), faces, process=False).face_normals
    for k in range(hand.num_shape):
        for sd in (-3.0, 3.0):
            shape = torch.zeros(1, hand.num_shape)
            shape[0, k] = sd
            out = hand(None, shape)
            v = out.vertices[0].numpy()
            mesh = trimesh.Trimesh(v, faces, process=False)
            assert mesh.volume > 0
            # No face flips over: shapes deform, they do not fold the surface.
            assert (np.einsum("ij,ij->i", mesh.face_normals, rest_normals) > 0).all(), (hand.shape_names[k], sd)
            length = float((out.keypoints[0, 12] - out.keypoints[0, 0]).norm())
            assert 0.14 < length < 0.24, (hand.shape_names[k], sd, length)
    size = hand(None, torch.eye(hand.num_shape)[:1] * 1.0)
    grown = float((size.keypoints[0, 12] - size.keypoints[0, 0]).norm())
    assert grown > base["wrist_to_middle_tip"] * 1.03


@pytest.mark.parametrize("name, measure", [
    ("palm_width", lambda kp: (kp[5] - kp[17]).norm()),
    ("finger_length", lambda kp: (kp[12] - kp[9]).norm()),
    ("thumb_length", lambda kp: (kp[4] - kp[2]).norm()),
    ("palm_length", lambda kp: (kp[9] - kp[0]).norm()),
])
def test_named_shape_components_change_what_they_name(hand, name, measure):
    k = hand.shape_names.index(name)
    shape = torch.zeros(1, hand.num_shape)
    shape[0, k] = 1.0
    before = measure(hand().keypoints[0])
    after = measure(hand(None, shape).keypoints[0])
    assert after > before * 1.02


def test_outputs_and_translation(hand):
    pose = torch.zeros(2, 16, 3)
    pose[1, 0] = torch.tensor([0.3, -1.2, 0.5])
    out = hand(pose)
    assert out.vertices.shape == (2, 778, 3) and out.keypoints.shape == (2, 21, 3)
    assert out.joints.shape == (2, 16, 3)
    torch.testing.assert_close(out.keypoints[:, 0], torch.zeros(2, 3), atol=1e-6, rtol=0)
    # The global rotation turns the hand about the wrist: distances to the wrist are kept.
    torch.testing.assert_close(out.vertices[0].norm(dim=-1), out.vertices[1].norm(dim=-1), atol=1e-5, rtol=0)
    t = torch.tensor([[0.1, -0.05, 0.6], [0.0, 0.0, 0.4]])
    moved = hand(pose, translation=t)
    torch.testing.assert_close(moved.keypoints[:, 0], t)
    torch.testing.assert_close(moved.vertices - t[:, None], out.vertices, atol=1e-6, rtol=0)


def test_gradients_flow_to_pose_and_shape(hand):
    pose = torch.zeros(1, 16, 3, requires_grad=True)
    shape = torch.zeros(1, hand.num_shape, requires_grad=True)
    hand(pose, shape).vertices.sum().backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    assert shape.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, words", [
    ({"pose": torch.zeros(1, 15, 3)}, ["pose", "(B, 16, 3)"]),
    ({"pose": torch.zeros(16, 3)}, ["pose", "(B, 16, 3)"]),
    ({"pose": torch.full((1, 16, 3), float("nan"))}, ["pose", "NaN"]),
    ({"pose": torch.zeros(1, 16, 3), "shape": torch.zeros(1, 3)}, ["shape", "(B, 10)"]),
    ({"pose": torch.zeros(2, 16, 3), "shape": torch.zeros(1, 10)}, ["shape", "batch"]),
    ({"pose": torch.zeros(1, 16, 3), "translation": torch.zeros(1, 2)}, ["translation", "(B, 3)"]),
    ({"pose": "fist"}, ["pose"]),
    ({"pose": torch.zeros(1, 16, 3, dtype=torch.bool)}, ["pose", "float"]),
])
def test_bad_input_names_the_argument(hand, kwargs, words):
    with pytest.raises(ValueError) as err:
        hand(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_unknown_model_and_pose_names(hand):
    with pytest.raises(ValueError, match="open"):
        load_hand_model("smpl")
    with pytest.raises(ValueError, match="MANO_RIGHT.pkl"):
        load_hand_model("mano")
    with pytest.raises(ValueError, match="fist"):
        hand.named_pose("wave")


def test_save_and_reload_round_trip(hand, tmp_path):
    path = tmp_path / "hand.safetensors"
    hand.save(path)
    again = load_hand_model(path=path)
    pose = hand.named_pose("ok")[None]
    torch.testing.assert_close(again(pose).vertices, hand(pose).vertices)
    assert again.shape_names == hand.shape_names
