import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_fixture import make_hands, open_hand, write_freihand
from handrecon.data import (
    FLAG_KEYS,
    Augmentation,
    FreiHAND,
    MixedDataset,
    TargetConfig,
    TrainingTransform,
    TransformedDataset,
    float_to_image,
    denormalize_keypoints,
    downsampling_matrices,
    joint_heatmaps,
    make_sample,
    mesh_levels,
    image_to_float,
    normalize_keypoints,
    silhouette,
)
from handrecon.mesh import load_topology


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = write_freihand(tmp_path_factory.mktemp("fh"), make_hands(4, seed=11), pose_json=True)
    return FreiHAND(root)


def test_heatmap_peaks_at_the_keypoint():
    rng = np.random.default_rng(0)
    uv = rng.uniform(0.05, 0.95, size=(21, 2))
    maps = joint_heatmaps(uv, (24, 32), sigma=1.5)
    assert maps.shape == (21, 24, 32) and maps.dtype == np.float32
    for k in range(21):
        y, x = np.unravel_index(np.argmax(maps[k]), maps[k].shape)
        assert x == np.clip(np.rint(uv[k, 0] * 32 - 0.5), 0, 31) and y == np.clip(np.rint(uv[k, 1] * 24 - 0.5), 0, 23)
    # exact value at an integer pixel centre
    m = joint_heatmaps(np.array([[(5 + 0.5) / 16, (7 + 0.5) / 16]]), 16, sigma=2.0)[0]
    assert m[7, 5] == pytest.approx(1.0) and m[7, 7] == pytest.approx(np.exp(-4 / 8), rel=1e-6)


def test_normalisation_round_trips():
    uv = np.array([[0.0, 0.0], [127.0, 63.5]])
    n = normalize_keypoints(uv, 128)
    np.testing.assert_allclose(n, [[0.5 / 128, 0.5 / 128], [1 - 0.5 / 128, 64 / 128]])
    np.testing.assert_allclose(denormalize_keypoints(n, 128), uv)
    img = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    t = image_to_float(img)
    assert t.shape == (3, 5, 6) and t.min() >= 0 and t.max() <= 1 and t.max() > 0.9
    np.testing.assert_array_equal(float_to_image(torch.from_numpy(t)), img)


def test_silhouette_is_an_area_resize():
    mask = np.zeros((64, 64), np.uint8)
    mask[8:40, 16:48] = 1
    sil = silhouette(mask, 16)
    assert sil.shape == (16, 16) and sil.mean() == pytest.approx(mask.mean())
    assert sil[2:10, 4:12].min() == 1.0 and sil[0, 0] == 0.0


def test_mesh_levels_follow_the_hierarchy():
    topo = load_topology(open_hand())
    verts = np.random.default_rng(0).normal(size=(778, 3))
    levels = mesh_levels(verts, topo)
    assert [len(v) for v in levels] == [778, 389, 195, 98, 49]
    down = downsampling_matrices(topo)
    for l in range(4):
        np.testing.assert_allclose(levels[l + 1], down[l] @ levels[l].astype(np.float64), atol=1e-6)
        # down-sampling keeps vertices: every coarse vertex is one of the finer level's
        assert np.all(np.isin(levels[l + 1][:, 0], levels[l][:, 0]))
    assert len(mesh_levels(verts, down, levels=2)) == 3


def test_training_transform_outputs_and_collation(dataset):
    cfg = TargetConfig(input_size=64, heatmap_size=32, silhouette_size=16, levels=4)
    transform = TrainingTransform(cfg)
    loader = DataLoader(TransformedDataset(dataset, transform), batch_size=2, num_workers=0)
    batch = next(iter(loader))
    expected = {
        "image": (2, 3, 64, 64), "K": (2, 3, 3), "affine": (2, 2, 3), "rotation": (2, 3, 3),
        "keypoints_2d": (2, 21, 2), "heatmaps": (2, 21, 32, 32), "silhouette": (2, 1, 16, 16),
        "keypoints_rel": (2, 21, 3), "vertices_rel": (2, 778, 3), "vertices_l1": (2, 389, 3),
        "vertices_l2": (2, 195, 3), "vertices_l3": (2, 98, 3), "vertices_l4": (2, 49, 3), "root": (2, 3),
        "scale": (2,), "visible": (2, 21), "pose": (2, 16, 3), "shape": (2, 10), "left": (2,), "index": (2,),
        **{flag: (2,) for flag in FLAG_KEYS},
    }
    assert {k: tuple(v.shape) for k, v in batch.items()} == expected
    assert all(v.dtype == torch.float32 for k, v in batch.items() if k != "index")
    assert batch["index"].tolist() == [0, 1] and batch["has_vertices"].tolist() == [1.0, 1.0]
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    for b in range(2):
        # the targets agree with each other: camera-space keypoints project onto the normalised 2D targets
        kp = (batch["keypoints_rel"][b] + batch["root"][b]).double()
        uvw = kp @ batch["K"][b].double().T
        uv = uvw[:, :2] / uvw[:, 2:]
        np.testing.assert_allclose(normalize_keypoints(uv.numpy(), 64), batch["keypoints_2d"][b].numpy(), atol=1e-4)
        np.testing.assert_allclose(batch["keypoints_rel"][b, 0].numpy(), 0, atol=1e-7)
        hm = batch["heatmaps"][b]
        peak = hm.flatten(1).argmax(1)
        kp2 = batch["keypoints_2d"][b].numpy() * 32 - 0.5
        inside = (kp2 > 0).all(1) & (kp2 < 31).all(1)
        np.testing.assert_array_equal((peak % 32).numpy()[inside], np.rint(kp2[inside, 0]))
        sil = batch["silhouette"][b, 0]
        assert 0.02 < sil.mean() < 0.9 and sil.max() <= 1
        # the coarse levels are the hierarchy of the root-relative mesh
        levels = mesh_levels(batch["vertices_rel"][b].numpy(), transform.down)
        np.testing.assert_allclose(levels[4], batch["vertices_l4"][b].numpy(), atol=1e-6)


def test_training_transform_is_deterministic_per_seed_epoch_and_index(dataset):
    transform = TrainingTransform(TargetConfig(input_size=48, levels=0, seed=3))
    a, b = transform(dataset[0]), transform(dataset[0])
    torch.testing.assert_close(a, b)
    c = transform(dataset[0], index=5)
    assert not torch.equal(a["image"], c["image"])
    transform.set_epoch(1)
    assert not torch.equal(a["image"], transform(dataset[0])["image"])
    ev = TrainingTransform(TargetConfig(input_size=48, train=False))
    e1 = ev(dataset[1])
    np.testing.assert_allclose(e1["rotation"].numpy(), np.eye(3), atol=1e-7)
    torch.testing.assert_close(e1, ev(dataset[1], index=9))


def test_two_view_targets_are_consistent(dataset):
    cfg = TargetConfig(input_size=64, heatmap_size=0, silhouette_size=0, levels=1, two_view=True)
    out = TrainingTransform(cfg)(dataset[2])
    assert out["image"].shape == (2, 3, 64, 64) and out["vertices_l1"].shape == (2, 389, 3)
    A = out["affine_rel"].double().numpy()
    R = out["rotation_rel"].double()
    uv1 = out["keypoints_2d"][0].double().numpy()
    np.testing.assert_allclose(uv1 @ A[:, :2].T + A[:, 2], out["keypoints_2d"][1].numpy(), atol=1e-4)
    torch.testing.assert_close((out["vertices_rel"][0].double() @ R.T).float(), out["vertices_rel"][1], atol=1e-5,
                               rtol=0)
    batch = torch.utils.data.default_collate([out, out])
    assert batch["image"].shape == (2, 2, 3, 64, 64) and batch["affine_rel"].shape == (2, 2, 3)


def test_unlabelled_samples_give_zero_targets():
    img = np.zeros((40, 40, 3), np.uint8)
    s = make_sample(img, np.array([[60.0, 0, 20], [0, 60, 20], [0, 0, 1]]), bbox=np.array([5, 5, 30, 30.0]))
    out = TrainingTransform(TargetConfig(input_size=32, levels=2))(s)
    assert out["heatmaps"].abs().sum() == 0 and out["vertices_l2"].abs().sum() == 0
    assert out["has_keypoints_2d"] == 0 and out["has_bbox"] == 1 and out["silhouette"].sum() == 0


def test_mixed_dataset_is_deterministic_and_weighted():
    a, b = list(range(10)), list(range(100, 130))
    mix = MixedDataset([a, b], weights=[3, 1], length=2000, seed=4)
    items = [mix[i] for i in range(len(mix))]
    assert items == [MixedDataset([a, b], weights=[3, 1], length=2000, seed=4)[i] for i in range(2000)]
    share = np.mean([x < 100 for x in items])
    assert 0.7 < share < 0.8
    assert set(x for x in items if x < 100) == set(a)
    mix.set_epoch(1)
    assert [mix[i] for i in range(50)] != items[:50]
    only = MixedDataset([a, b], weights=[0, 1], length=100)
    assert all(only[i] >= 100 for i in range(100))
    assert len(MixedDataset([a, b])) == 40
    with pytest.raises(ValueError, match="weights"):
        MixedDataset([a, b], weights=[1])
    with pytest.raises(IndexError):
        mix[2000]


def test_augmentation_output_size_follows_input_size(dataset):
    t = TrainingTransform(TargetConfig(input_size=40, augmentation=Augmentation(output_size=128)))
    assert t(dataset[0])["image"].shape == (3, 40, 40)
