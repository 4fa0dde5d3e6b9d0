"""The evaluator: files and keys on a real (synthetic) evaluation set, the exact back-mapping of crop-frame
predictions to the source camera (an oracle model on rotated crops), root registration plumbing, splits
without annotations, clear errors and the ``eval`` command."""

import csv
import json
import math
import shutil
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from handrecon.cli import main
from handrecon.data import FreiHAND, TargetConfig, TrainingTransform
from handrecon.evaluate import EvaluationError, evaluate, read_pred_json
from handrecon.metrics import freihand_scores
from handrecon.models import build_model, save_model
from handrecon.synth import SceneConfig, write_dataset

N, SIZE = 12, 64
FREIHAND_KEYS = set(freihand_scores(np.ones((1, 21, 3)), np.ones((1, 778, 3)), np.ones((1, 21, 3)) * 1.1,
                                    np.ones((1, 778, 3)) * 1.1))
EXTRA_KEYS = {"pa_auc_joints_20_50", "rr_mpjpe_mm", "rr_mpvpe_mm", "root_error_mm", "kp2d_error_px",
              "kp2d_auc_0_30px", "silhouette_iou"}
INFO_KEYS = {"scored", "crop", "root_source", "root_method", "keypoints_source", "model", "input_size", "weights", "data", "split",
             "handrecon_version", "notes", "files"}
FILES = ("scores.json", "pred.json", "per_sample.csv", "pck_joints.png", "pck_vertices.png")


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    """12 synthetic evaluation samples, 64x64, some of them left hands (mirrored by the reader)."""
    root = tmp_path_factory.mktemp("evalset") / "synth"
    write_dataset(root, N, split="evaluation", seed=0, config=SceneConfig(size=SIZE, left_probability=0.5),
                  workers=0, progress=False)
    left = FreiHAND(root, "evaluation").left
    assert left.any() and not left.all()
    return root


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "run" / "model"
    save_model(build_model("tiny"), path)
    return path


@pytest.fixture
def no_registration(monkeypatch):
    """Make ``handrecon.registration`` unimportable, whether or not it exists yet."""
    monkeypatch.setitem(sys.modules, "handrecon.registration", None)


def _exact_register_root(calls):
    """A test double of register_root: the root that reprojects the keypoints exactly (linear least squares of
    ``(X + t)_xy - x_n (X + t)_z = 0`` with ``x_n = K^-1 uv``). Records its inputs in ``calls``."""

    def register_root(vertices, keypoints, keypoints_2d, K, silhouette=None, confidence=None, **kwargs):
        calls.append({"vertices": vertices, "keypoints": keypoints, "keypoints_2d": keypoints_2d, "K": K,
                      "silhouette": silhouette})
        X, uv, Km = (np.asarray(a, np.float64) for a in (keypoints, keypoints_2d, K))
        roots = []
        for b in range(len(X)):
            xn = np.concatenate([uv[b], np.ones((21, 1))], 1) @ np.linalg.inv(Km[b]).T
            A = np.zeros((42, 3))
            A[0::2, 0], A[1::2, 1] = 1.0, 1.0
            A[0::2, 2], A[1::2, 2] = -xn[:, 0], -xn[:, 1]
            rhs = np.empty(42)
            rhs[0::2] = xn[:, 0] * X[b, :, 2] - X[b, :, 0]
            rhs[1::2] = xn[:, 1] * X[b, :, 2] - X[b, :, 1]
            roots.append(np.linalg.lstsq(A, rhs, rcond=None)[0])
        return types.SimpleNamespace(root=torch.as_tensor(np.stack(roots)))

    return register_root


@pytest.fixture
def fake_registration(monkeypatch):
    calls = []
    module = types.ModuleType("handrecon.registration")
    module.register_root = _exact_register_root(calls)
    monkeypatch.setitem(sys.modules, "handrecon.registration", module)
    return calls


def _rotated_crops():
    """Random (but reproducible) training crops: rotated up to 90 degrees, shifted, rescaled."""
    return TrainingTransform(TargetConfig(input_size=SIZE, train=True, seed=11, levels=0, heatmap_size=0,
                                          silhouette_size=SIZE))


class Oracle(nn.Module):
    """Returns the ground truth of whichever precomputed crop the input image is (exact image match)."""

    def __init__(self, dataset, transform, keypoints_rel=True, silhouette=False):
        super().__init__()
        crops = [transform(dataset[i]) for i in range(len(dataset))]
        rotations = torch.stack([c["rotation"] for c in crops])
        assert (rotations - torch.eye(3)).abs().amax(dim=(1, 2)).max() > 0.1  # the crops really rotate
        for key in ("image", "vertices_rel", "keypoints_rel", "keypoints_2d", "silhouette"):
            self.register_buffer(key, torch.stack([c[key] for c in crops]))
        self.with_keypoints = keypoints_rel
        self.with_silhouette = silhouette
        self.config = types.SimpleNamespace(input_size=SIZE)
        self.preset = "oracle"

    def forward(self, image):
        d = (image[:, None] - self.image[None]).flatten(2).square().sum(-1)
        dist, j = d.min(1)
        assert float(dist.max()) == 0.0
        # the model interface: root-relative ``vertices``/``keypoints``, ``keypoints_2d`` in input pixels
        out = {"vertices": self.vertices_rel[j], "keypoints_2d": self.keypoints_2d[j] * SIZE - 0.5}
        if self.with_keypoints:
            out["keypoints"] = self.keypoints_rel[j]
        if self.with_silhouette:
            out["silhouette"] = (self.silhouette[j] - 0.5) * 20.0  # logits of the true mask
        return out


def _raw_labels(root):
    xyz = np.asarray(json.loads((root / "evaluation_xyz.json").read_text()))
    verts = np.asarray(json.loads((root / "evaluation_verts.json").read_text()))
    return xyz, verts


def test_tiny_model_writes_every_file_with_every_key(eval_set, tiny_weights, no_registration):
    scores = evaluate(tiny_weights, eval_set, batch_size=5, progress=False)
    out = tiny_weights.parent / "eval_evaluation"
    saved = json.loads((out / "scores.json").read_text())
    assert saved == scores
    assert FREIHAND_KEYS | EXTRA_KEYS | INFO_KEYS <= set(saved)
    for key in FREIHAND_KEYS | EXTRA_KEYS - {"silhouette_iou"}:  # the tiny model predicts no silhouette
        assert isinstance(saved[key], (int, float)) and math.isfinite(saved[key]), key
    assert saved["silhouette_iou"] is None
    assert saved["num_samples"] == N and saved["scored"] is True
    assert saved["root_source"] == "ground_truth" and saved["root_error_mm"] == 0.0
    assert any("GROUND TRUTH" in note for note in saved["notes"])
    assert saved["model"] == "tiny" and saved["input_size"] == SIZE and saved["split"] == "evaluation"
    assert 0 < saved["pa_mpjpe_mm"] < saved["cs_mpjpe_mm"]

    xyz, verts = json.loads((out / "pred.json").read_text())
    assert np.asarray(xyz).shape == (N, 21, 3) and np.asarray(verts).shape == (N, 778, 3)
    read_xyz, read_verts = read_pred_json(out / "pred.json")
    assert np.array_equal(read_xyz, np.asarray(xyz)) and np.array_equal(read_verts, np.asarray(verts))
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    assert len(rows) == N and [int(r["index"]) for r in rows] == list(range(N))
    assert {"cs_mpjpe_mm", "pa_mpjpe_mm", "cs_mpvpe_mm", "pa_mpvpe_mm", "f5", "f15", "root_error_mm"} <= set(rows[0])
    assert np.mean([float(r["pa_mpjpe_mm"]) for r in rows]) == pytest.approx(saved["pa_mpjpe_mm"], abs=1e-3)
    for name in ("pck_joints.png", "pck_vertices.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # atomic writes: no temporary files left


@pytest.mark.parametrize("keypoints_rel", [True, False], ids=["model-keypoints", "regressed-keypoints"])
def test_oracle_on_rotated_crops_scores_zero_error(eval_set, tmp_path, no_registration, keypoints_rel):
    transform = _rotated_crops()
    oracle = Oracle(FreiHAND(eval_set, "evaluation"), transform, keypoints_rel=keypoints_rel, silhouette=True)
    scores = evaluate(oracle, eval_set, out=tmp_path / "ev", batch_size=5, transform=transform, progress=False)
    assert scores["keypoints_source"] == ("model" if keypoints_rel else "regressed")
    for key in ("cs_mpjpe_mm", "pa_mpjpe_mm", "cs_mpvpe_mm", "pa_mpvpe_mm", "rr_mpjpe_mm", "rr_mpvpe_mm"):
        assert scores[key] < 1e-3, key
    for key in ("f5", "f15", "pa_f5", "pa_f15", "pa_auc_joints_20_50", "silhouette_iou"):
        assert scores[key] == pytest.approx(1.0, abs=1e-9), key
    for key in ("cs_auc_joints", "pa_auc_joints", "cs_auc_vertices", "pa_auc_vertices", "kp2d_auc_0_30px"):
        assert scores[key] > 0.994, key  # only the threshold 0 (errors <= 0) misses: 1 - 0.5 / 99
    assert scores["kp2d_error_px"] < 1e-3  # 2D keypoints mapped back through the inverse crop affine
    # pred.json is in the frame of the dataset's label files: left hands are un-mirrored.
    xyz, verts = (np.asarray(a) for a in json.loads((tmp_path / "ev" / "pred.json").read_text()))
    gt_xyz, gt_verts = _raw_labels(eval_set)
    np.testing.assert_allclose(xyz, gt_xyz, atol=2e-6)
    np.testing.assert_allclose(verts, gt_verts, atol=2e-6)


def test_registration_root_from_predicted_2d(eval_set, tmp_path, fake_registration):
    transform = _rotated_crops()
    dataset = FreiHAND(eval_set, "evaluation")
    oracle = Oracle(dataset, transform, silhouette=True).train()
    scores = evaluate(oracle, eval_set, out=tmp_path / "ev", batch_size=8, transform=transform, progress=False)
    assert oracle.training  # a model object gets its mode back
    assert scores["root_source"] == "registration"
    assert scores["root_error_mm"] < 1e-3 and scores["cs_mpjpe_mm"] < 1e-3 and scores["f5"] == 1.0
    first = fake_registration[0]
    assert tuple(first["vertices"].shape) == (8, 778, 3) and tuple(first["keypoints_2d"].shape) == (8, 21, 2)
    sample = dataset[0]
    np.testing.assert_allclose(np.asarray(first["K"][0]), sample["K"], atol=1e-6)  # the source camera
    np.testing.assert_allclose(np.asarray(first["keypoints_2d"][0]), sample["keypoints_2d"], atol=1e-3)
    sil = np.asarray(first["silhouette"])  # the predicted silhouette, warped back to source pixels
    assert sil.shape == (8, SIZE, SIZE)
    assert np.mean((sil[0] >= 0.5) == (sample["mask"] > 0)) > 0.97

    assert evaluate(oracle, eval_set, out=tmp_path / "gt", transform=transform, root="gt",
                    progress=False)["root_source"] == "ground_truth"


def test_split_without_annotations_writes_predictions_only(eval_set, tmp_path, fake_registration, monkeypatch):
    bare = tmp_path / "bare"
    shutil.copytree(eval_set / "evaluation", bare / "evaluation")
    for name in ("evaluation_K.json", "evaluation_scale.json"):
        shutil.copy(eval_set / name, bare / name)
    model = build_model("tiny")
    scores = evaluate(model, bare, out=tmp_path / "ev", progress=False)
    assert scores["scored"] is False and scores["root_source"] == "registration"
    assert any("annotations" in note for note in scores["notes"])
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["pred.json", "scores.json"]
    xyz, verts = json.loads((tmp_path / "ev" / "pred.json").read_text())
    assert np.asarray(xyz).shape == (N, 21, 3) and np.asarray(verts).shape == (N, 778, 3)

    monkeypatch.setitem(sys.modules, "handrecon.registration", None)
    with pytest.raises(ValueError, match="no ground-truth root"):
        evaluate(model, bare, out=tmp_path / "ev2", progress=False)


def test_clear_errors(eval_set, tiny_weights, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        evaluate(tmp_path / "nope", eval_set, progress=False)
    with pytest.raises(FileNotFoundError, match="missing_data"):
        evaluate(tiny_weights, tmp_path / "missing_data", progress=False)
    with pytest.raises(ValueError, match="root"):
        evaluate(tiny_weights, eval_set, root="guess", progress=False)
    broken = tmp_path / "broken"
    shutil.copytree(eval_set, broken)
    (broken / "evaluation" / "rgb" / "00000005.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(EvaluationError, match="sample 5 "):
        evaluate(tiny_weights, broken, out=tmp_path / "ev", batch_size=4, root="gt", progress=False)


def test_eval_command(eval_set, tiny_weights, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0 and "example" in capsys.readouterr().out

    out = tmp_path / "cli"
    assert main(["eval", str(tiny_weights), "--data", str(eval_set), "--out", str(out), "--batch-size", "7",
                 "--root", "gt", "--quiet"]) == 0
    text = capsys.readouterr().out
    for label in ("PA-MPJPE", "PA-MPVPE", "F@5mm", "F@15mm", "CS-MPJPE", "ground truth", str(out)):
        assert label in text
    assert json.loads((out / "scores.json").read_text())["num_samples"] == N

    assert main(["eval", str(tmp_path / "missing"), "--data", str(eval_set), "--quiet"]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert main(["eval", str(tiny_weights), "--data", str(tmp_path / "nodata"), "--quiet"]) == 2
    assert "nodata" in capsys.readouterr().err


def test_real_registration_recovers_the_oracle_root(eval_set, tmp_path):
    """The real registration fed exact 2D keypoints: without a silhouette the 2D solution is exact; with the
    true silhouette at this tiny image size (64 px: 1 px is about 2% of the hand's extent) the 1D estimate is
    centimetres off, and Eq. 5 blends it in wherever the two disagree by more than 2 cm."""

    transform = _rotated_crops()
    dataset = FreiHAND(eval_set, "evaluation")
    exact = evaluate(Oracle(dataset, transform, silhouette=False), eval_set, out=tmp_path / "2d", batch_size=8,
                     transform=transform, progress=False)
    assert exact["root_source"] == "registration"
    assert exact["root_error_mm"] < 1e-3 and exact["cs_mpjpe_mm"] < 1e-3
    fused = evaluate(Oracle(dataset, transform, silhouette=True), eval_set, out=tmp_path / "2d1d", batch_size=8,
                     transform=transform, progress=False)
    assert 0 < fused["root_error_mm"] < 40.0


def test_root_methods_of_table_4(eval_set, tmp_path):
    """Each root method the evaluator offers, on exact inputs: 2D and PnP recover the root exactly, 1D from a
    64-pixel silhouette only roughly; a bad method is refused."""
    transform = _rotated_crops()
    oracle = Oracle(FreiHAND(eval_set, "evaluation"), transform, silhouette=True)
    errors = {}
    for method, axes in (("2d", 12), ("pnp", 12), ("1d", 12), ("1d", 2), ("adaptive", 2)):
        scores = evaluate(oracle, eval_set, out=tmp_path / f"{method}{axes}", batch_size=8, transform=transform,
                          progress=False, root_method=method, num_axes=axes)
        assert scores["root_method"].startswith(method)
        errors[method, axes] = scores["root_error_mm"]
    assert errors["2d", 12] < 1e-3 and errors["pnp", 12] < 0.1
    assert 0 < errors["1d", 12] < 60 and errors["1d", 2] > 0
    with pytest.raises(ValueError, match="root_method"):
        evaluate(oracle, eval_set, out=tmp_path / "bad", transform=transform, root_method="lstsq")


def test_box_crop_for_full_frame_images(eval_set, tiny_weights, tmp_path, no_registration):
    """crop='box' crops around the labelled hand (as a detector would) instead of using the whole frame: the
    model sees another input, so its predictions change; a bad crop name is refused."""
    full = evaluate(tiny_weights, eval_set, out=tmp_path / "full", progress=False)
    box = evaluate(tiny_weights, eval_set, out=tmp_path / "box", progress=False, crop="box", crop_scale=1.4)
    assert full["crop"] == "auto" and box["crop"] == "box x 1.4"
    assert box["kp2d_error_px"] != full["kp2d_error_px"]
    with pytest.raises(ValueError, match="crop"):
        evaluate(tiny_weights, eval_set, out=tmp_path / "bad", crop="tight")


def test_root_table_places_one_prediction_by_every_method(eval_set, tmp_path):
    """root_table=True: every Table 4 row from one forward pass; each row equals a separate evaluation with that
    root method, the ground-truth row has no root error, and a model without a silhouette gets no 1D rows."""
    transform = _rotated_crops()
    dataset = FreiHAND(eval_set, "evaluation")
    scores = evaluate(Oracle(dataset, transform, silhouette=True), eval_set, out=tmp_path / "table", batch_size=8,
                      transform=transform, progress=False, root_table=True)
    rows = {(r["method"], r["num_axes"]): r for r in scores["root_table"]}
    assert list(rows) == [("gt", None), ("pnp", None), ("2d", None), ("1d", 2), ("1d", 12), ("adaptive", 2),
                          ("adaptive", 12)]
    assert rows["gt", None]["root_error_mm"] == 0.0
    assert rows["gt", None]["cs_mpjpe_mm"] == pytest.approx(scores["rr_mpjpe_mm"], abs=1e-6)
    assert rows["2d", None]["root_error_mm"] < 1e-3
    assert rows["adaptive", 12]["cs_mpjpe_mm"] == pytest.approx(scores["cs_mpjpe_mm"], abs=1e-9)
    single = evaluate(Oracle(dataset, transform, silhouette=True), eval_set, out=tmp_path / "one", batch_size=8,
                      transform=transform, progress=False, root_method="1d", num_axes=2)
    assert rows["1d", 2]["root_error_mm"] == pytest.approx(single["root_error_mm"], abs=1e-9)
    assert rows["1d", 2]["root_error_mm"] != rows["1d", 12]["root_error_mm"]
    text = (tmp_path / "table" / "root_table.md").read_text()
    assert "| 1D, A = 2 |" in text and "oracle" in text

    no_sil = evaluate(Oracle(dataset, transform, silhouette=False), eval_set, out=tmp_path / "nosil", batch_size=8,
                      transform=transform, progress=False, root_table=True)
    assert [r["method"] for r in no_sil["root_table"]] == ["gt", "pnp", "2d"]


def test_eval_command_prints_the_root_table(eval_set, tiny_weights, tmp_path, capsys):
    code = main(["eval", str(tiny_weights), "--data", str(eval_set), "--out", str(tmp_path / "e"), "--root-table",
                 "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "root recovery (CMR Table 4)" in out and "| ground-truth root |" in out
    assert (tmp_path / "e" / "root_table.md").is_file()


def test_read_pred_json_names_the_file_and_what_is_wrong(tmp_path):
    path = tmp_path / "pred.json"
    with pytest.raises(ValueError, match="no file"):
        read_pred_json(path)
    path.write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match=r"pred\.json \[keypoints, vertices\]"):
        read_pred_json(path)
    path.write_text(json.dumps([np.zeros((2, 20, 3)).tolist(), np.zeros((2, 778, 3)).tolist()]))
    with pytest.raises(ValueError, match=r"keypoints of shape \(N, 21, 3\), got \(2, 20, 3\)"):
        read_pred_json(path)
    path.write_text(json.dumps([np.zeros((2, 21, 3)).tolist(), np.zeros((3, 778, 3)).tolist()]))
    with pytest.raises(ValueError, match="2 keypoint sets but 3 vertex sets"):
        read_pred_json(path)
