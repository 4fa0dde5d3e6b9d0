import numpy as np
import pytest
import torch

from data_fixture import SIZE, camera, open_hand, posed_hand, render, write_pickle, write_png
from handrecon.camera import mirror_points, project_points
from handrecon.data import HO3D, HO3D_TO_FREIHAND, RHD, RHD_TO_FREIHAND, DatasetError
from handrecon.data._posing import GL_TO_CV
from handrecon.hand.lbs import lbs
from handrecon.hand.mano import ManoFileError
from handrecon.hand.model import MANO_TIP_VERTICES


# ---- RHD -------------------------------------------------------------------------------------------

def _to_rhd(kp21):
    """FreiHAND-order (21, k) -> RHD order (wrist, then each finger tip to base)."""
    out = np.zeros_like(kp21)
    out[list(RHD_TO_FREIHAND)] = kp21
    return out


def _rhd_entry(rng, visible_left, visible_right, K):
    """Both hands of one RHD frame: a right hand and a left hand (the mirror of a posed right hand)."""
    _, _, vr, kr = posed_hand(rng, center=(0.05, 0.02, 0.6))
    _, _, vl, kl = posed_hand(rng, center=(0.05, 0.0, 0.6))  # mirrored below to x ~ -0.05
    vl, kl = mirror_points(vl), mirror_points(kl)
    image, labels = render(vl, K, SIZE, label=5)
    image, labels = render(vr, K, SIZE, label=20, image=image, labels=labels)
    labels[labels == 0] = (np.arange(SIZE)[None, :] % 2 == 0).repeat(SIZE, 0)[labels == 0]  # "person" pixels
    xyz = np.concatenate([_to_rhd(kl), _to_rhd(kr)])
    uv = project_points(xyz, K)
    vis = np.zeros(42)
    vis[:visible_left] = 1
    vis[21:21 + visible_right] = 1
    anno = {"xyz": xyz.astype(np.float32), "uv_vis": np.concatenate([uv, vis[:, None]], 1).astype(np.float32),
            "K": K.astype(np.float32)}
    return anno, image, labels, dict(left=(vl, kl), right=(vr, kr))


@pytest.fixture(scope="module")
def rhd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhd")
    rng = np.random.default_rng(5)
    K = camera(SIZE)
    annos, truth = {}, {}
    for sid, (nl, nr) in enumerate([(15, 3), (4, 18), (10, 10), (0, 0)]):
        anno, image, labels, hands = _rhd_entry(rng, nl, nr, K)
        annos[sid] = anno
        truth[sid] = (image, labels, hands)
        write_png(root / "training" / "color" / f"{sid:05d}.png", image)
        write_png(root / "training" / "mask" / f"{sid:05d}.png", labels)
    write_pickle(root / "training" / "anno_training.pickle", annos)
    return root, truth, K


def test_rhd_picks_hand_reorders_and_mirrors(rhd_root):
    root, truth, K = rhd_root
    ds = RHD(root)
    assert len(ds) == 3  # frame 3 has no visible keypoint
    # frame 0: left hand has more visible keypoints -> mirrored to a right hand
    s = ds[0]
    image, labels, hands = truth[0]
    vl, kl = hands["left"]
    assert s["left"] and s["has_keypoints_3d"] and not s["has_vertices"] and not s["has_pose"]
    np.testing.assert_allclose(s["keypoints"], mirror_points(kl), atol=1e-6)
    np.testing.assert_array_equal(s["image"], image[:, ::-1])
    np.testing.assert_array_equal(s["mask"], ((labels >= 2) & (labels <= 17))[:, ::-1].astype(np.uint8))
    uv = project_points(kl, K)
    np.testing.assert_allclose(s["keypoints_2d"], np.stack([SIZE - 1 - uv[:, 0], uv[:, 1]], 1), atol=1e-3)
    np.testing.assert_allclose(s["keypoints_2d"], project_points(s["keypoints"], s["K"]), atol=1e-3)
    # visibility reordered with the keypoints: RHD keypoints 0..14 visible = wrist, thumb..middle, ring tip..
    expected_vis = np.zeros(21)
    expected_vis[[k for k in range(21) if RHD_TO_FREIHAND[k] < 15]] = 1
    np.testing.assert_array_equal(s["visible"], expected_vis)
    assert s["has_bbox"]
    # frame 1: right hand kept as is
    s = ds[1]
    vr, kr = truth[1][2]["right"]
    assert not s["left"]
    np.testing.assert_allclose(s["keypoints"], kr, atol=1e-6)
    np.testing.assert_array_equal(s["mask"], (truth[1][1] >= 18).astype(np.uint8))
    # FreiHAND order: thumb base-to-tip follows the skeleton (bone 1->2 shorter than wrist->1)
    kp = s["keypoints"]
    assert np.linalg.norm(kp[4] - kp[0]) > np.linalg.norm(kp[1] - kp[0])
    # frame 2: tie on visible keypoints -> more mask pixels wins
    labels2 = truth[2][1]
    n_left, n_right = ((labels2 >= 2) & (labels2 <= 17)).sum(), (labels2 >= 18).sum()
    assert ds[2]["left"] == (n_left > n_right)
    assert len(RHD(root, min_visible=12)) == 2


def test_rhd_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="anno_training.pickle"):
        RHD(tmp_path)
    K = camera(SIZE)
    write_pickle(tmp_path / "training" / "anno_training.pickle",
                 {0: {"xyz": np.zeros((21, 3)), "uv_vis": np.zeros((42, 3)), "K": K}})
    with pytest.raises(DatasetError, match=r"anno_training.pickle: entry 0 'xyz' is \(21, 3\); expected"):
        RHD(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    write_pickle(tmp_path / "training" / "anno_training.pickle", {0: Payload()})
    with pytest.raises(ManoFileError, match="anno_training.pickle: refusing to load pickle global '(__builtin__|builtins).print'"):
        RHD(tmp_path)


# ---- HO3D ------------------------------------------------------------------------------------------

def _ho3d_meta(rng, K):
    """A HO3D-style training meta made by plain LBS (MANO's convention: trans added to the posed mesh),
    in OpenGL coordinates, joints in MANO order + tips."""
    hand = open_hand()
    pose = rng.normal(scale=0.15, size=(16, 3))
    pose[0] = rng.normal(scale=1.0, size=3)
    beta = rng.normal(scale=0.5, size=10)
    with torch.no_grad():
        verts, joints = lbs(torch.as_tensor(pose[None], dtype=torch.float32),
                            torch.as_tensor(beta[None], dtype=torch.float32), hand.v_template, hand.shapedirs,
                            hand.joint_regressor, hand.weights, hand.parents, hand.posedirs)
    verts, joints = verts[0].double().numpy(), joints[0].double().numpy()
    trans = np.array([0.01, -0.02, -0.5]) - joints[0]  # wrist at z = -0.5 (in front of an OpenGL camera)
    verts_gl, joints_gl = verts + trans, joints + trans
    tips = verts_gl[list(MANO_TIP_VERTICES)]
    return {"handPose": pose.reshape(-1), "handBeta": beta, "handTrans": trans, "camMat": K,
            "handJoints3D": np.concatenate([joints_gl, tips]).astype(np.float64), "objName": "006_mustard_bottle",
            "objRot": np.zeros((3, 1))}, verts_gl


@pytest.fixture(scope="module")
def ho3d_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ho3d")
    rng = np.random.default_rng(9)
    K = camera(SIZE)
    metas = []
    names = [("ABF10", "0000"), ("ABF10", "0001"), ("MC1", "0042")]
    for seq, frame in names:
        meta, verts_gl = _ho3d_meta(rng, K)
        image, _ = render(verts_gl @ GL_TO_CV, K, SIZE)
        write_png(root / "train" / seq / "rgb" / f"{frame}.png", image)
        write_pickle(root / "train" / seq / "meta" / f"{frame}.pkl", meta)
        metas.append((meta, verts_gl))
    (root / "train.txt").write_text("".join(f"{s}/{f}\n" for s, f in names))
    # evaluation: root joint and box only
    write_png(root / "evaluation" / "SM1" / "rgb" / "0007.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    write_pickle(root / "evaluation" / "SM1" / "meta" / "0007.pkl",
                 {"handJoints3D": np.array([0.01, 0.02, -0.5]), "handBoundingBox": np.array([10, 12, 60, 70.0]),
                  "camMat": K, "handPose": None, "handBeta": None, "handTrans": None})
    (root / "evaluation.txt").write_text("SM1/0007\n")
    return root, metas


def test_ho3d_converts_frame_order_and_mesh(ho3d_root):
    root, metas = ho3d_root
    hand = open_hand()
    ds = HO3D(root, "train", hand_model=hand)
    assert len(ds) == 3
    for i, (meta, verts_gl) in enumerate(metas):
        s = ds[i]
        expected_kp = meta["handJoints3D"][list(HO3D_TO_FREIHAND)] * np.array([1, -1, -1])
        np.testing.assert_allclose(s["keypoints"], expected_kp, atol=1e-6)
        assert s["keypoints"][:, 2].min() > 0.3  # OpenGL -z became OpenCV +z
        np.testing.assert_allclose(s["vertices"], verts_gl * np.array([1, -1, -1]), atol=2e-5)
        # the model's 21 keypoints on the mesh match the labels (tips exactly, joints within a millimetre)
        regressed = hand.keypoint_regressor.double().numpy() @ s["vertices"].astype(np.float64)
        err = np.linalg.norm(regressed - s["keypoints"], axis=1)
        assert err[[4, 8, 12, 16, 20]].max() < 1e-5 and err.max() < 2e-3
        # the sample's pose (global rotation turned into OpenCV) reproduces the mesh up to the wrist definition
        with torch.no_grad():
            out = hand(torch.as_tensor(s["pose"][None]), torch.as_tensor(s["shape"][None]),
                       torch.as_tensor(s["root"][None]))
        diff = out.vertices[0].double().numpy() - s["vertices"]
        assert np.abs(diff - diff.mean(0)).max() < 1e-5 and np.linalg.norm(diff.mean(0)) < 2e-3
        assert s["has_bbox"] and s["has_pose"]
    assert not HO3D(root, "train")[0]["has_vertices"]


def test_ho3d_evaluation_has_root_and_box_only(ho3d_root):
    root, _ = ho3d_root
    s = HO3D(root, "evaluation")[0]
    assert s["has_root"] and s["has_bbox"]
    assert not (s["has_keypoints_3d"] or s["has_vertices"] or s["has_pose"] or s["has_keypoints_2d"])
    np.testing.assert_allclose(s["root"], [0.01, -0.02, 0.5], atol=1e-6)
    np.testing.assert_allclose(s["bbox"], [10, 12, 60, 70])


def test_ho3d_errors_name_the_file(tmp_path, ho3d_root):
    with pytest.raises(FileNotFoundError, match="train.txt"):
        HO3D(tmp_path)
    root, _ = ho3d_root
    bad = tmp_path / "bad"
    write_png(bad / "train" / "S" / "rgb" / "0.png", np.zeros((8, 8, 3), np.uint8))
    write_pickle(bad / "train" / "S" / "meta" / "0.pkl", {"camMat": np.eye(3), "handJoints3D": np.zeros((20, 3))})
    (bad / "train.txt").write_text("S/0\nS/1\n")
    ds = HO3D(bad)
    with pytest.raises(DatasetError, match=r"0.pkl: 'handJoints3D' has shape \(20, 3\); expected \(21, 3\)"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="rgb/1"):
        ds[1]
    (bad / "train.txt").write_text("just-a-name\n")
    with pytest.raises(DatasetError, match="train.txt: line 1"):
        HO3D(bad)
