"""Predictor: the whole predict path (crop, K update, registration, un-cropping, mirroring) against the ground
truth of synthetic scenes, with an oracle model that returns the truth of the crop it is shown; intrinsics
(given, EXIF, assumed); input checks."""

from __future__ import annotations

import math
import struct

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from handrecon.camera import apply_affine, crop_affine, mirror_intrinsics, mirror_points
from handrecon.intrinsics import ASSUMED_FOCAL_35MM, assumed_intrinsics, exif_focal, parse_intrinsics
from handrecon.predict import Prediction, Predictor, crop_image, crop_region
from handrecon.synth import AppearanceConfig, SceneConfig, SceneGenerator

S = 128  # oracle input size (as MobRecon)
SIL = 64  # oracle silhouette resolution (S / 2 as MobRecon-sil)




@pytest.fixture(scope="module")
def samples():
    """Three right hands, 128x128, with image, K, keypoints, vertices, keypoints_2d, mask, root. No occluders:
    the oracle's silhouette is the visible mask, and 1D registration needs the whole hand's outline."""
    config = SceneConfig(size=128, appearance=AppearanceConfig(occluder_probability=0.0))
    out = SceneGenerator(seed=3, config=config).generate([0, 1, 2])
    assert not any(s["left"] for s in out)
    return out


def _tight_bbox(sample, pad=2.0):
    uv = sample["keypoints_2d"].astype(np.float64)
    return np.concatenate([uv.min(0) - pad, uv.max(0) + pad])


def _expected_affine(shape, bbox):
    """The crop the Predictor must make, written out independently: the bbox's longer side x 1.3 around its
    centre (training's evaluation crop), or the square around the whole image."""
    H, W = shape[:2]
    if bbox is None:
        return crop_affine(((W - 1) / 2, (H - 1) / 2), max(H, W), S), float(max(H, W))
    b = np.asarray(bbox, np.float64)
    side = 1.3 * max(b[2] - b[0], b[3] - b[1])
    return crop_affine((b[:2] + b[2:]) / 2, side, S), side


class Oracle(nn.Module):
    """A 'model' that returns the ground truth of the crop it is shown: primed with (sample, bbox) pairs in
    the order the Predictor will call it, it computes for the crop the Predictor must make the root-relative
    vertices and keypoints, the crop's 2D keypoints and the silhouette logits; it also records its inputs."""

    def __init__(self, keypoints=True, silhouette=True):
        super().__init__()
        self.input_size = S
        self.preset = "oracle"
        self.keypoints, self.silhouette = keypoints, silhouette
        self.queue, self.seen = [], []

    def prime(self, pairs):
        self.queue = list(pairs)

    def forward(self, image):
        B = image.shape[0]
        assert image.dtype == torch.float32 and tuple(image.shape[1:]) == (3, S, S)
        assert float(image.min()) >= 0 and float(image.max()) <= 1
        pairs, self.queue = self.queue[:B], self.queue[B:]
        assert len(pairs) == B, "oracle called more often than primed"
        self.seen.extend(image.numpy())
        out = {k: [] for k in ("vertices", "keypoints", "keypoints_2d", "silhouette")}
        for sample, bbox in pairs:
            A, _ = _expected_affine(sample["image"].shape, bbox)
            root = sample["root"].astype(np.float64)
            out["vertices"].append(sample["vertices"] - root)
            out["keypoints"].append(sample["keypoints"] - root)
            out["keypoints_2d"].append(apply_affine(sample["keypoints_2d"].astype(np.float64), A))
            k = SIL / S  # crop pixel u -> silhouette pixel (u + 0.5) k - 0.5
            to_map = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1]]) @ np.vstack([A, [0, 0, 1]])
            prob = cv2.warpAffine(sample["mask"].astype(np.float32), to_map[:2], (SIL, SIL), flags=cv2.INTER_LINEAR)
            out["silhouette"].append(20.0 * (prob[None] - 0.5))
        res = {key: torch.as_tensor(np.stack(v), dtype=torch.float32) for key, v in out.items()}
        if not self.keypoints:
            del res["keypoints"]
        if not self.silhouette:
            del res["silhouette"]
        return res


def _check(pred: Prediction, truth: dict, mm=1.0, px=0.5):
    assert isinstance(pred, Prediction)
    assert pred.vertices.shape == (778, 3) and pred.keypoints.shape == (21, 3) and pred.root.shape == (3,)
    assert np.abs(pred.vertices - truth["vertices"]).max() < mm * 1e-3
    assert np.abs(pred.keypoints - truth["keypoints"]).max() < mm * 1e-3
    assert np.abs(pred.root - truth["root"]).max() < mm * 1e-3
    assert np.abs(pred.keypoints_2d - truth["keypoints_2d"]).max() < px
    assert pred.mode in ("2d", "blend", "1d")


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_bbox_given_reproduces_ground_truth(samples):
    oracle = Oracle()
    p = Predictor(oracle, refine=0)
    for s in samples:
        bbox = _tight_bbox(s)
        oracle.prime([(s, bbox)])
        pred = p.predict(s["image"], K=s["K"], bbox=bbox)
        _check(pred, s)
        assert pred.K_source == "given" and pred.model == "oracle" and pred.left is False
        np.testing.assert_allclose(pred.bbox, bbox)
        # the crop the oracle saw is the image warped by the expected affine (anti-aliasing aside: no downscale)
        A, side = _expected_affine(s["image"].shape, bbox)
        expected = cv2.warpAffine(s["image"], A, (S, S), flags=cv2.INTER_LINEAR) / 255.0
        assert np.abs(oracle.seen[-1].transpose(1, 2, 0) - expected).max() < 1.5 / 255
        c = (bbox[:2] + bbox[2:]) / 2
        np.testing.assert_allclose(pred.crop, [c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2])
        # the silhouette comes back in image pixels
        assert pred.silhouette.shape == s["mask"].shape
        assert _iou(pred.silhouette > 0.5, s["mask"] > 0) > 0.85


def _resized_padded(sample, factor=3, pad_right=60):
    """The sample upscaled ``factor`` times (K and 2D labels follow) and padded with black columns on the
    right (K unchanged): a non-square image the whole-image crop must pad and downscale (with blur)."""
    H, W = sample["image"].shape[:2]
    image = cv2.resize(sample["image"], (W * factor, H * factor), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(sample["mask"], (W * factor, H * factor), interpolation=cv2.INTER_NEAREST)
    image = np.pad(image, ((0, 0), (0, pad_right), (0, 0)))
    mask = np.pad(mask, ((0, 0), (0, pad_right)))
    scale = np.array([[factor, 0, 0.5 * factor - 0.5], [0, factor, 0.5 * factor - 0.5], [0, 0, 1]])
    out = dict(sample, image=image, mask=mask, K=(scale @ sample["K"]).astype(np.float64))
    out["keypoints_2d"] = sample["keypoints_2d"] * factor + (0.5 * factor - 0.5)
    return out


def test_whole_image_when_no_bbox(samples):
    oracle = Oracle()
    p = Predictor(oracle, refine=0)
    for s in samples[:2]:
        big = _resized_padded(s)
        oracle.prime([(big, None)])
        pred = p.predict(big["image"], K=big["K"])
        _check(pred, big, px=0.5)
        assert pred.bbox is None
        H, W = big["image"].shape[:2]
        np.testing.assert_allclose(pred.crop[2] - pred.crop[0], max(H, W))
        assert pred.silhouette.shape == (H, W)


def test_left_hand_is_mirrored_and_unmirrored(samples):
    oracle = Oracle()
    p = Predictor(oracle, refine=0)
    for s in samples:
        H, W = s["image"].shape[:2]
        bbox = _tight_bbox(s)
        # the same scene seen as a left hand: mirrored image, K, box and labels
        image_l = np.ascontiguousarray(s["image"][:, ::-1])
        K_l = mirror_intrinsics(s["K"].astype(np.float64), W)
        bbox_l = np.array([W - 1 - bbox[2], bbox[1], W - 1 - bbox[0], bbox[3]])
        truth_l = {"vertices": mirror_points(s["vertices"]), "keypoints": mirror_points(s["keypoints"]),
                   "root": mirror_points(s["root"][None])[0],
                   "keypoints_2d": np.stack([W - 1 - s["keypoints_2d"][:, 0], s["keypoints_2d"][:, 1]], 1)}
        oracle.prime([(s, bbox)])  # the Predictor mirrors back: the model sees the right hand
        pred = p.predict(image_l, K=K_l, bbox=bbox_l, left=True)
        _check(pred, truth_l)
        assert pred.left is True
        np.testing.assert_allclose(pred.K, K_l)
        np.testing.assert_allclose(pred.bbox, bbox_l)
        assert _iou(pred.silhouette > 0.5, s["mask"][:, ::-1] > 0) > 0.85
        # and without the flag the oracle would have been shown the mirrored crop
        A, _ = _expected_affine(s["image"].shape, bbox)
        expected = cv2.warpAffine(s["image"], A, (S, S), flags=cv2.INTER_LINEAR) / 255.0
        assert np.abs(oracle.seen[-1].transpose(1, 2, 0) - expected).max() < 1.5 / 255


def test_regressed_keypoints_and_no_silhouette(samples):
    from handrecon.hand import load_hand_model

    regressor = load_hand_model("open").keypoint_regressor.double().numpy()
    oracle = Oracle(keypoints=False, silhouette=False)
    p = Predictor(oracle, refine=0)
    s = samples[0]
    bbox = _tight_bbox(s)
    oracle.prime([(s, bbox)])
    pred = p.predict(s["image"], K=s["K"], bbox=bbox)
    assert pred.silhouette is None and pred.mode == "2d"
    np.testing.assert_allclose(pred.keypoints, regressor @ pred.vertices, atol=1e-9)
    assert np.abs(pred.vertices - s["vertices"]).max() < 1e-3
    assert np.abs(pred.keypoints - s["keypoints"]).max() < 1e-3  # the regressor reproduces the hand's keypoints


def test_predict_batch_matches_predict(samples):
    oracle = Oracle()
    p = Predictor(oracle, refine=0)
    s0, s1, s2 = samples
    big = _resized_padded(s2, factor=2, pad_right=30)
    W1 = s1["image"].shape[1]
    bbox0, bbox1 = _tight_bbox(s0), _tight_bbox(s1)
    bbox1_l = np.array([W1 - 1 - bbox1[2], bbox1[1], W1 - 1 - bbox1[0], bbox1[3]])
    images = [s0["image"], np.ascontiguousarray(s1["image"][:, ::-1]), big["image"]]
    Ks = [s0["K"], mirror_intrinsics(s1["K"].astype(np.float64), W1), big["K"]]
    bboxes, lefts = [bbox0, bbox1_l, None], [False, True, False]
    pairs = [(s0, bbox0), (s1, bbox1), (big, None)]
    oracle.prime(pairs)
    batch = p.predict_batch(images, Ks=Ks, bboxes=bboxes, lefts=lefts)
    assert len(batch) == 3
    for i in range(3):
        oracle.prime([pairs[i]])
        single = p.predict(images[i], K=Ks[i], bbox=bboxes[i], left=lefts[i])
        for key in ("vertices", "keypoints", "keypoints_2d", "root", "K", "silhouette"):
            np.testing.assert_allclose(getattr(batch[i], key), getattr(single, key), atol=1e-6, err_msg=key)
        assert batch[i].mode == single.mode and batch[i].left == lefts[i]
    _check(batch[0], s0)
    _check(batch[2], big)
    # one K / box / flag for all images
    oracle.prime([(s0, bbox0), (s0, bbox0)])
    two = p.predict_batch([s0["image"], s0["image"]], Ks=s0["K"], bboxes=bbox0, lefts=False)
    np.testing.assert_allclose(two[0].vertices, two[1].vertices)
    assert p.predict_batch([]) == []


def test_to_json_round_trip(samples):
    import json

    oracle = Oracle()
    s = samples[0]
    oracle.prime([(s, None)])
    pred = Predictor(oracle, refine=0).predict(s["image"], K=s["K"])
    info = json.loads(json.dumps(pred.to_json()))
    for key in ("vertices", "keypoints", "keypoints_2d", "root", "mode", "K", "K_source", "model", "left", "bbox"):
        assert key in info
    np.testing.assert_allclose(info["vertices"], pred.vertices, atol=1e-6)
    assert info["bbox"] is None and info["K_source"] == "given" and "silhouette" not in info


# ---------------------------------------------------------------------------------------------------------
# crops
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,bbox", [(128, (30.0, 40.0, 90.0, 100.0)), (600, None), (600, (10, 300, 250, 590))])
def test_crop_matches_training_crop(size, bbox):
    """Our crop (region-limited blur) equals the training evaluation crop of handrecon.data."""
    from handrecon.data import crop_sample, make_sample

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (size, size + 40, 3), dtype=np.uint8), (0, 0), 1.0)
    K = np.array([[300.0, 0, 100], [0, 300, 80], [0, 0, 1]])
    center, side = crop_region(size, size + 40, bbox)
    A = crop_affine(center, side, S)
    ours = crop_image(image, A, S, side)
    ref = crop_sample(make_sample(image, K), center, side, S).sample["image"]
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


# ---------------------------------------------------------------------------------------------------------
# intrinsics
# ---------------------------------------------------------------------------------------------------------
def test_given_and_assumed_intrinsics(samples):
    oracle = Oracle()
    p = Predictor(oracle, refine=0)
    s = samples[0]
    bbox = _tight_bbox(s)
    K = s["K"].astype(np.float64)
    oracle.prime([(s, bbox)])
    four = p.predict(s["image"], K=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]), bbox=bbox)
    assert four.K_source == "given"
    np.testing.assert_allclose(four.K, K)
    oracle.prime([(s, bbox)])
    assumed = p.predict(s["image"], bbox=bbox)
    assert assumed.K_source == "assumed-fov"
    np.testing.assert_allclose(assumed.K, assumed_intrinsics(128, 128))
    # the wrong focal length scales the depth; the 2D keypoints do not move
    assert np.abs(assumed.keypoints_2d - four.keypoints_2d).max() < 0.5
    ratio = assumed.root[2] / four.root[2]
    assert ratio == pytest.approx(assumed.K[0, 0] / K[0, 0], rel=0.05)


def test_assumed_field_of_view():
    K = assumed_intrinsics(4000, 3000)  # a 4:3 phone photo
    hfov = math.degrees(2 * math.atan(2000 / K[0, 0]))
    dfov = math.degrees(2 * math.atan(2500 / K[0, 0]))
    assert 66 < hfov < 68 and dfov == pytest.approx(2 * math.degrees(math.atan(21.633 / ASSUMED_FOCAL_35MM)), abs=0.1)
    np.testing.assert_allclose(K[:2, 2], [1999.5, 1499.5])
    assert assumed_intrinsics(36, 24)[0, 0] == pytest.approx(ASSUMED_FOCAL_35MM)  # 1 px = 1 mm of film


def _exif_app1(entries, big_endian=False, exif_entries=None):
    """An APP1 segment: TIFF header, IFD0 with ``entries`` (tag, type, count, value-or-bytes) and, if given, an
    Exif sub-IFD with ``exif_entries``. RATIONALs as (num, den) go to a data area."""
    e = ">" if big_endian else "<"

    def ifd(items, offset):
        data = b""
        head = struct.pack(e + "H", len(items))
        data_start = offset + 2 + 12 * len(items) + 4
        for tag, typ, value in items:
            if typ == 5:
                head += struct.pack(e + "HHII", tag, typ, 1, data_start + len(data))
                data += struct.pack(e + "II", *value)
            elif typ == 3:
                head += struct.pack(e + "HHIHH", tag, typ, 1, value, 0)
            else:
                head += struct.pack(e + "HHII", tag, typ, 1, value)
        return head + struct.pack(e + "I", 0) + data

    tiff = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    items = list(entries)
    if exif_entries is not None:
        ifd0_len = len(ifd(items + [(0x8769, 4, 0)], 8))
        items.append((0x8769, 4, 8 + ifd0_len))
        body = ifd(items, 8) + ifd(exif_entries, 8 + ifd0_len)
    else:
        body = ifd(items, 8)
    payload = b"Exif\x00\x00" + tiff + body
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_with(image, app1: bytes) -> bytes:
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1])
    assert ok
    data = data.tobytes()
    return data[:2] + app1 + data[2:]


def test_exif_focal_length(tmp_path, samples):
    s = samples[0]
    image = cv2.resize(s["image"], (192, 128))  # 3:2, so f35 / 36 * width is the expected focal length
    oracle = Oracle()
    p = Predictor(oracle, refine=0)
    cases = {
        "f35_le": (_exif_app1([(0x010F, 3, 1)], exif_entries=[(0xA405, 3, 28)]), 28 / 36 * 192),
        "f35_be": (_exif_app1([], big_endian=True, exif_entries=[(0xA405, 3, 50)]), 50 / 36 * 192),
        # 4.2 mm lens, 1000 px per cm on a sensor written at 384 px wide -> 420 px at 384 wide, 210 at 192
        "focal_plane": (_exif_app1([], exif_entries=[(0x920A, 5, (42, 10)), (0xA20E, 5, (1000, 1)),
                                                     (0xA210, 3, 3), (0xA002, 4, 384), (0xA003, 4, 256)]), 210.0),
    }
    for name, (app1, f_expected) in cases.items():
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(_jpeg_with(image, app1))
        assert exif_focal(path.read_bytes())
        oracle.prime([(dict(s, image=image), None)])  # the oracle's truth is irrelevant here
        pred = p.predict(path)
        assert pred.K_source == "exif", name
        assert pred.K[0, 0] == pytest.approx(f_expected, rel=1e-6), name
        np.testing.assert_allclose(pred.K[:2, 2], [95.5, 63.5])
        assert pred.K[1, 1] == pred.K[0, 0]
    # a given K wins over EXIF
    oracle.prime([(dict(s, image=image), None)])
    assert p.predict(tmp_path / "f35_le.jpg", K=s["K"]).K_source == "given"
    # odd EXIF never crashes: truncated, zero denominators, absurd values -> assumed
    good = _exif_app1([], exif_entries=[(0xA405, 3, 28)])
    truncated = good[4:34]  # the payload cut inside the IFD, in a segment of the right length
    truncated = b"\xff\xe1" + struct.pack(">H", len(truncated) + 2) + truncated
    for k, app1 in enumerate([truncated, _exif_app1([], exif_entries=[(0x920A, 5, (42, 0))]),
                              _exif_app1([], exif_entries=[(0xA405, 3, 60000)]),
                              b"\xff\xe1\x00\x10Exif\x00\x00garbage!",
                              _exif_app1([(0x8769, 4, 10_000)])]):
        path = tmp_path / f"odd{k}.jpg"
        path.write_bytes(_jpeg_with(image, app1))
        oracle.prime([(dict(s, image=image), None)])
        pred = p.predict(path)
        assert pred.K_source == "assumed-fov", k
    # PNG: no EXIF
    path = tmp_path / "plain.png"
    cv2.imwrite(str(path), image[:, :, ::-1])
    oracle.prime([(dict(s, image=image), None)])
    assert p.predict(path).K_source == "assumed-fov"


def test_parse_intrinsics(tmp_path):
    K = parse_intrinsics("500,510,320,240")
    np.testing.assert_allclose(K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    for content in ('{"fx": 500, "fy": 510, "cx": 320, "cy": 240}', '[[500, 0, 320], [0, 510, 240], [0, 0, 1]]',
                    '{"K": [[500, 0, 320], [0, 510, 240], [0, 0, 1]]}'):
        path = tmp_path / "K.json"
        path.write_text(content)
        np.testing.assert_allclose(parse_intrinsics(str(path)), K)
    for bad in ("500,510,320", "a,b,c,d", "-500,510,320,240", str(tmp_path / "missing.json")):
        with pytest.raises(ValueError, match="--K"):
            parse_intrinsics(bad)
    path = tmp_path / "bad.json"
    path.write_text('{"f": 3}')
    with pytest.raises(ValueError, match="--K"):
        parse_intrinsics(str(path))


# ---------------------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------------------
def test_bad_inputs_name_the_argument(tmp_path, samples):
    p = Predictor(Oracle(), refine=0)
    img = samples[0]["image"]
    K = samples[0]["K"]
    text = tmp_path / "not_an_image.jpg"
    text.write_text("hello")
    huge = tmp_path / "huge.png"  # refused from its header, before decoding
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 9000, 9000)
                     + b"\x08\x02\x00\x00\x00" + b"\x00" * 100)
    cases = [
        (dict(image=huge), "too large"),
        (dict(image="/no/such/file.png"), "image"),
        (dict(image=text), "image"),
        (dict(image=[[1, 2, 3]]), "image"),
        (dict(image=img.astype(np.float32)), "image"),
        (dict(image=img[:, :, 0]), "image"),
        (dict(image=np.zeros((10, 200, 3), np.uint8)), "too small"),
        (dict(image=np.zeros((8200, 16, 3), np.uint8)), "too large"),
        (dict(image=img, K=np.eye(2)), "K"),
        (dict(image=img, K=[[-100, 0, 64], [0, 100, 64], [0, 0, 1]]), "K"),
        (dict(image=img, K=[[np.nan, 0, 64], [0, 100, 64], [0, 0, 1]]), "K"),
        (dict(image=img, bbox=(1, 2, 3)), "bbox"),
        (dict(image=img, bbox=(10, 10, 5, 20)), "bbox"),
        (dict(image=img, bbox=(10, 10, np.nan, 20)), "bbox"),
        (dict(image=img, bbox=(500, 500, 600, 600)), "bbox"),
        (dict(image=img, bbox="0,0,10,10"), "bbox"),
        (dict(image=img, left="yes"), "left"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            p.predict(**kwargs)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        p.predict_batch([img, np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"Ks"):
        p.predict_batch([img, img], Ks=[K])
    with pytest.raises(ValueError, match=r"bboxes\[0\]"):
        p.predict_batch([img], bboxes=[(0, 0, -1, 5)])
    with pytest.raises(ValueError, match="runtime"):
        Predictor(Oracle(), runtime="tensorrt")
    with pytest.raises(ValueError, match="model"):
        Predictor(None)


def test_bundled_model(samples):
    from handrecon.models.pretrained import DEFAULT_MODEL

    p = Predictor.from_pretrained()
    assert p.name == DEFAULT_MODEL and p.runtime == "torch"
    s = samples[0]
    preds = p.predict_batch([s["image"], s["image"]], Ks=s["K"], bboxes=[_tight_bbox(s), None], lefts=[False, True])
    for pred in preds:
        assert pred.vertices.shape == (778, 3) and np.isfinite(pred.vertices).all()
        assert pred.mode in ("2d", "1d", "blend", "failed") and pred.model == DEFAULT_MODEL
        assert pred.silhouette is not None and pred.silhouette.shape == (128, 128)


def test_no_bbox_refines_around_the_first_pass_keypoints(samples):
    """Without a bbox the first pass sees the whole image and the second crops around its 2D keypoints (box x
    the crop scale): with the oracle both passes are exact, and the second crop is the keypoint box's."""
    from handrecon.predict import _keypoint_box

    s = samples[0]
    H, W = s["image"].shape[:2]
    box = _keypoint_box(s["keypoints_2d"].astype(np.float64), H, W)
    oracle = Oracle()
    oracle.prime([(s, None), (s, box)])
    pred = Predictor(oracle, refine=1).predict(s["image"], K=s["K"])
    assert len(oracle.seen) == 2 and not oracle.queue
    _check(pred, s)
    assert pred.bbox is None and pred.bbox_source == "refined" and pred.to_json()["bbox_source"] == "refined"
    c, side = (box[:2] + box[2:]) / 2, 1.3 * (box[2:] - box[:2]).max()
    np.testing.assert_allclose(pred.crop, [c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2],
                               atol=1e-6)
    with pytest.raises(ValueError, match="refine"):
        Predictor(oracle, refine=-1)
    with pytest.raises(ValueError, match="crop_scale"):
        Predictor(oracle, crop_scale=0.5)
