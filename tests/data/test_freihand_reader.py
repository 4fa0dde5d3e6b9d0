import json

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from data_fixture import SIZE, make_hands, open_hand, write_freihand, write_json
from handrecon.camera import mirror_points, project_points
from handrecon.data import SAMPLE_KEYS, DatasetError, FreiHAND, make_sample
from handrecon.data._io import load_array_list
from handrecon.hand import HandModel
from handrecon.hand.keypoints import KEYPOINT_FROM_JOINT


@pytest.fixture(scope="module")
def hands():
    return make_hands(5, seed=1)


def test_round_trip(tmp_path, hands):
    root = write_freihand(tmp_path / "fh", hands, pose_json=True)
    ds = FreiHAND(root)
    assert len(ds) == 5 and ds.num_versions == 1
    for i, h in enumerate(hands):
        s = ds[i]
        assert tuple(s) == SAMPLE_KEYS
        np.testing.assert_array_equal(s["image"], h["image"])
        np.testing.assert_array_equal(s["mask"], h["mask"])
        np.testing.assert_allclose(s["K"], h["K"], rtol=1e-6)
        np.testing.assert_allclose(s["keypoints"], h["keypoints"], atol=1e-6)
        np.testing.assert_allclose(s["vertices"], h["vertices"], atol=1e-6)
        np.testing.assert_allclose(s["keypoints_2d"], project_points(h["keypoints"], h["K"]), atol=1e-3)
        np.testing.assert_allclose(s["root"], h["keypoints"][0], atol=1e-6)
        np.testing.assert_allclose(s["scale"], np.linalg.norm(h["keypoints"][9] - h["keypoints"][10]), rtol=1e-5)
        np.testing.assert_allclose(s["pose"], h["pose"], atol=1e-6)
        np.testing.assert_allclose(s["shape"], h["shape"], atol=1e-6)
        assert s["has_mask"] and s["has_keypoints_3d"] and s["has_vertices"] and s["has_pose"] and s["has_scale"]
        assert not s["left"] and s["index"] == i
        # the rendered mask agrees with the labels
        uv = np.rint(s["keypoints_2d"]).astype(int)
        inside = (uv >= 0).all(1) & (uv < SIZE).all(1)
        assert s["mask"][uv[inside, 1], uv[inside, 0]].mean() > 0.9
    batch = default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, SIZE, SIZE, 3) and batch["vertices"].shape == (2, 778, 3)
    assert batch["has_vertices"].dtype == torch.bool and batch["index"].tolist() == [0, 1]


def test_versions_share_labels_and_masks(tmp_path, hands):
    root = write_freihand(tmp_path / "fh", hands[:3], versions=4)
    ds = FreiHAND(root)
    assert ds.num_versions == 4 and len(ds) == 12
    for i in range(12):
        sid, version, path = ds.locate(i)
        assert (sid, version) == (i % 3, i // 3) and path.name == f"{sid + 3 * version:08d}.png"
        s = ds[i]
        np.testing.assert_array_equal(s["image"], np.roll(hands[sid]["image"], version, axis=2))
        np.testing.assert_array_equal(s["mask"], hands[sid]["mask"])
        np.testing.assert_allclose(s["keypoints"], hands[sid]["keypoints"], atol=1e-6)
    only = FreiHAND(root, versions=(2,))
    assert len(only) == 3
    np.testing.assert_array_equal(only[1]["image"], np.roll(hands[1]["image"], 2, axis=2))
    with pytest.raises(ValueError, match=r"versions must be in \[0, 4\)"):
        FreiHAND(root, versions=(4,))


def test_evaluation_split_without_labels(tmp_path, hands):
    root = write_freihand(tmp_path / "fh", hands[:2], split="evaluation", masks=False, xyz=False, verts=False)
    s = FreiHAND(root, split="evaluation")[1]
    assert not (s["has_keypoints_3d"] or s["has_vertices"] or s["has_keypoints_2d"] or s["has_mask"])
    assert s["has_scale"] and not s["has_root"]
    np.testing.assert_allclose(s["scale"], np.linalg.norm(hands[1]["keypoints"][9] - hands[1]["keypoints"][10]),
                               rtol=1e-5)
    assert not s["keypoints"].any() and not s["vertices"].any()


def test_mano_parameters_pose_the_hand_like_the_official_toolbox(tmp_path, hands):
    base = open_hand()
    rng = np.random.default_rng(3)
    pose_mean = np.zeros((16, 3))
    pose_mean[1:] = rng.normal(scale=0.1, size=(15, 3))
    hand = HandModel(base.v_template, base.faces, base.shapedirs, base.joint_regressor, base.weights,
                     base.keypoint_regressor, pose_mean=pose_mean)
    thetas, expected = [], []
    for h in hands[:3]:
        with torch.no_grad():
            out = hand(torch.as_tensor(h["pose"][None], dtype=torch.float32),
                       torch.as_tensor(h["shape"][None], dtype=torch.float32),
                       torch.as_tensor(h["keypoints"][0][None], dtype=torch.float32))
        j9 = out.joints[0, KEYPOINT_FROM_JOINT[9]].double().numpy()
        K = h["K"]
        focal = 0.5 * (K[0, 0] + K[1, 1])
        uv_root = project_points(j9[None], K)[0]
        thetas.append(np.concatenate([(h["pose"] - pose_mean).reshape(-1), h["shape"], uv_root, [focal / j9[2]]]))
        expected.append(out.vertices[0].double().numpy())
    root = write_freihand(tmp_path / "fh", hands[:3], verts=False, mano=thetas)
    assert FreiHAND(root)[0]["has_vertices"] is np.False_  # no hand model: no mesh, no pose
    ds = FreiHAND(root, hand_model=hand)
    for i in range(3):
        s = ds[i]
        assert s["has_vertices"] and s["has_pose"]
        np.testing.assert_allclose(s["vertices"], expected[i], atol=2e-5)
        np.testing.assert_allclose(s["pose"], hands[i]["pose"], atol=1e-5)


def test_synthetic_left_hands_are_mirrored_to_right(tmp_path, hands):
    left = [dict(h) for h in hands[:2]]
    # sample 1 is a left hand as the generator stores it: image flipped, labels mirrored
    lh = left[1]
    K = lh["K"].copy()
    K[0, 2] = SIZE - 1 - K[0, 2]
    lh.update(image=lh["image"][:, ::-1].copy(), mask=lh["mask"][:, ::-1].copy(), K=K,
              keypoints=mirror_points(lh["keypoints"]), vertices=mirror_points(lh["vertices"]))
    visible = [[True] * 21, [True] * 20 + [False]]
    meta = [{"left": False, "visible": visible[0]}, {"left": True, "visible": visible[1]}]
    root = write_freihand(tmp_path / "fh", left, meta=meta, pose_json=True)
    s = FreiHAND(root)[1]
    h = hands[1]
    assert s["left"] and s["has_pose"]
    np.testing.assert_array_equal(s["image"], h["image"])
    np.testing.assert_array_equal(s["mask"], h["mask"])
    np.testing.assert_allclose(s["K"], h["K"], atol=1e-5)
    np.testing.assert_allclose(s["keypoints"], h["keypoints"], atol=1e-6)
    np.testing.assert_allclose(s["vertices"], h["vertices"], atol=1e-6)
    assert s["visible"].tolist() == [1.0] * 20 + [0.0]
    # pose describes the right hand: the hand model reproduces the mirrored-back mesh
    with torch.no_grad():
        out = open_hand()(torch.as_tensor(s["pose"][None]), torch.as_tensor(s["shape"][None]),
                          torch.as_tensor(s["root"][None]))
    np.testing.assert_allclose(out.vertices[0].numpy(), s["vertices"], atol=1e-5)
    # without mirroring the left labels stay, and the right-hand pose is not offered
    raw = FreiHAND(root, mirror_left=False)[1]
    assert raw["left"] and not raw["has_pose"]
    np.testing.assert_allclose(raw["keypoints"], lh["keypoints"], atol=1e-6)


def test_vertices_from_pose_json_with_hand_model(tmp_path, hands):
    root = write_freihand(tmp_path / "fh", hands[:2], verts=False, pose_json=True)
    assert not FreiHAND(root)[0]["has_vertices"]
    s = FreiHAND(root, hand_model=open_hand())[0]
    np.testing.assert_allclose(s["vertices"], hands[0]["vertices"], atol=1e-5)


def test_missing_and_malformed_files_are_named(tmp_path, hands):
    root = write_freihand(tmp_path / "fh", hands[:3])
    (root / "training_K.json").unlink()
    with pytest.raises(FileNotFoundError, match="training_K.json"):
        FreiHAND(root)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FreiHAND(tmp_path / "nowhere")

    root = write_freihand(tmp_path / "a", hands[:3])
    write_json(root / "training_xyz.json", [h["keypoints"].tolist() for h in hands[:2]])
    with pytest.raises(DatasetError, match=r"training_xyz.json: holds 2 items; expected 3"):
        FreiHAND(root)
    write_json(root / "training_xyz.json", [h["keypoints"][:20].tolist() for h in hands[:3]])
    with pytest.raises(DatasetError, match=r"training_xyz.json: item 0 has shape \(20, 3\); expected \(21, 3\)"):
        FreiHAND(root)
    (root / "training_xyz.json").write_text("[[1, 2")
    with pytest.raises(DatasetError, match="training_xyz.json: not valid JSON"):
        FreiHAND(root)

    root = write_freihand(tmp_path / "b", hands[:3])
    (root / "training" / "rgb" / "00000002.png").unlink()
    with pytest.raises(DatasetError, match=r"2 images is not a multiple of the 3 samples"):
        FreiHAND(root)
    (root / "training" / "rgb" / "00000001.png").rename(root / "training" / "rgb" / "00000007.png")
    with pytest.raises(DatasetError, match="not contiguous"):
        FreiHAND(root)

    root = write_freihand(tmp_path / "c", hands[:3], pose_json=True)
    data = json.loads((root / "training_pose.json").read_text())
    data[1]["shape"] = data[1]["shape"][:5]
    write_json(root / "training_pose.json", data)
    with pytest.raises(DatasetError, match=r"training_pose.json: entry 1 has pose/shape/root of sizes 48/5/3"):
        FreiHAND(root)

    root = write_freihand(tmp_path / "d", hands[:1])
    (root / "training" / "rgb" / "00000000.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="00000000.png: not a readable image"):
        FreiHAND(root)[0]


def test_streaming_json_parser_matches_json(tmp_path, hands):
    path = tmp_path / "verts.json"
    write_json(path, [h["vertices"].tolist() for h in hands])
    small = load_array_list(path, (778, 3), "vertices")
    fast = load_array_list(path, (778, 3), "vertices", fast_bytes=0)
    np.testing.assert_array_equal(small, fast)
    mano = tmp_path / "mano.json"
    write_json(mano, [[list(range(61))], [list(range(61))]])
    np.testing.assert_array_equal(load_array_list(mano, (61,), "mano", fast_bytes=0), load_array_list(mano, (61,), "mano"))
    write_json(path, [h["vertices"][:777].tolist() for h in hands[:3]])
    with pytest.raises(DatasetError, match="verts.json"):
        load_array_list(path, (778, 3), "vertices", fast_bytes=0)
    path.write_text('[[1.0, "x"]]')
    with pytest.raises(DatasetError, match="non-numeric"):
        load_array_list(path, (2,), "pairs", fast_bytes=0)


def test_make_sample_validates():
    img = np.zeros((8, 10, 3), np.uint8)
    K = np.array([[50.0, 0, 5], [0, 50, 4], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"keypoints'\] must have shape \(21, 3\)"):
        make_sample(img, K, keypoints=np.ones((20, 3)))
    with pytest.raises(ValueError, match="in front of the camera"):
        make_sample(img, K, keypoints=-np.ones((21, 3)))
    with pytest.raises(ValueError, match="0/1"):
        make_sample(img, K, mask=np.full((8, 10), 255, np.uint8))
    with pytest.raises(ValueError, match="has_vertices=True needs"):
        make_sample(img, K, has_vertices=True)
    with pytest.raises(ValueError, match="unknown sample keys"):
        make_sample(img, K, source="x")
    s = make_sample(img, K, root=np.array([0, 0, 1.0]))
    assert s["has_root"] and not s["has_keypoints_3d"] and not s["has_keypoints_2d"]
