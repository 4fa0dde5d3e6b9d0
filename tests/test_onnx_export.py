"""ONNX export: a checked file with a dynamic batch whose outputs match PyTorch, and a Predictor on ONNX Runtime
that gives the same predictions as on PyTorch."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from handrecon.export import export_onnx, onnx_metadata, verify_onnx
from handrecon.models import build_model
from handrecon.predict import Predictor, cache_dir
from handrecon.synth import AppearanceConfig, SceneConfig, SceneGenerator




@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    torch.nn.init.normal_(model.to_coarse.weight, std=0.5)  # vertices that depend on the image
    return model


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    """The tiny model exported with the default (dynamo) exporter."""
    return export_onnx(tiny, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def ghost_sil():
    """A MobRecon with a silhouette head (grid_sample, pixel_unshuffle, interpolate, spiral index_select)."""
    torch.manual_seed(1)
    return build_model("mobrecon-ghost-sil", input_size=64).eval()


@pytest.fixture(scope="module")
def scene():
    config = SceneConfig(size=96, appearance=AppearanceConfig(occluder_probability=0.0))
    return SceneGenerator(seed=4, config=config).generate([0, 1])


def _ort(path, x):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"image": x.numpy()})))


def test_export_is_checked_and_matches_pytorch_with_dynamic_batch(tiny, tiny_onnx):
    import onnx

    onnx.checker.check_model(str(tiny_onnx))
    meta = onnx_metadata(tiny_onnx)
    assert meta["input_size"] == 64 and meta["outputs"][:2] == ["vertices", "keypoints_2d"]
    assert meta["exporter"] == "torch.onnx.export(dynamo=True)" and meta["opset"] == 18
    assert not [p for p in os.listdir(tiny_onnx.parent) if p.startswith(".")]  # no temporary files left
    from handrecon.hand import load_hand_model

    regressor = load_hand_model("open").keypoint_regressor
    for batch in (1, 3):
        x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            ref = tiny(x)
        got = _ort(tiny_onnx, x)
        assert got["vertices"].shape == (batch, 778, 3)
        assert np.abs(got["vertices"] - ref["vertices"].numpy()).max() < 5e-4
        kp_ref = (regressor @ ref["vertices"]).numpy()
        assert np.abs(regressor.numpy() @ got["vertices"] - kp_ref).max() < 5e-4
        assert np.abs(got["keypoints_2d"] - ref["keypoints_2d"].numpy()).max() < 0.05
    # vertices really depend on the input (the comparison above is not vacuous)
    assert ref["vertices"].std(0).max() > 1e-4


def test_verify_rejects_a_graph_that_disagrees(tiny_onnx):
    torch.manual_seed(5)
    other = build_model("tiny").eval()
    torch.nn.init.normal_(other.to_coarse.weight, std=0.05)
    with pytest.raises(ValueError, match="disagrees with PyTorch"):
        verify_onnx(other, tiny_onnx)


def test_torchscript_exporter_and_silhouette_model(ghost_sil, tmp_path, scene):
    path = export_onnx(ghost_sil, tmp_path / "ghost.onnx", opset=17, exporter="torchscript")
    meta = onnx_metadata(path)
    assert meta["outputs"] == ["vertices", "keypoints_2d", "silhouette"] and meta["opset"] == 17
    assert meta["exporter"] == "torch.onnx.export(dynamo=False)"
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = ghost_sil(x)
    got = _ort(path, x)
    for key in ("vertices", "keypoints_2d", "silhouette"):
        assert np.abs(got[key] - ref[key].numpy()).max() < 1e-3, key
    # the Predictor on ONNX Runtime equals the Predictor on PyTorch, silhouette included
    images = [s["image"] for s in scene]
    Ks = [s["K"] for s in scene]
    torch_preds = Predictor(ghost_sil).predict_batch(images, Ks=Ks)
    onnx_preds = Predictor(None, runtime="onnx", onnx_path=path, num_threads=1).predict_batch(images, Ks=Ks)
    for a, b in zip(torch_preds, onnx_preds):
        assert np.abs(a.vertices - b.vertices).max() < 5e-4
        assert np.abs(a.silhouette - b.silhouette).max() < 1e-3
        assert b.model == "mobrecon-ghost-sil"


def test_onnx_predictor_matches_torch(tiny, tiny_onnx, scene):
    p_torch = Predictor(tiny)
    p_onnx = Predictor(None, runtime="onnx", onnx_path=tiny_onnx, num_threads=1)
    assert p_onnx.input_size == 64 and p_onnx.name == "tiny"
    for s, left, bbox in ((scene[0], False, None), (scene[1], True, (20, 20, 70, 80))):
        a = p_torch.predict(s["image"], K=s["K"], bbox=bbox, left=left)
        b = p_onnx.predict(s["image"], K=s["K"], bbox=bbox, left=left)
        assert np.abs(a.keypoints - b.keypoints).max() < 5e-4
        assert np.abs(a.vertices - b.vertices).max() < 5e-4
        assert np.abs(a.root - b.root).max() < 5e-4
        assert np.abs(a.keypoints_2d - b.keypoints_2d).max() < 0.05
        assert a.mode == b.mode and a.K_source == b.K_source == "given"


def test_onnx_runtime_exports_once_to_the_cache(tiny, scene, tmp_path, monkeypatch):
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    p = Predictor(tiny, runtime="onnx")
    files = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(files) == 1 and p.onnx_path == files[0]
    stamp = files[0].stat().st_mtime_ns
    again = Predictor(tiny, runtime="onnx")  # reused, not exported again
    assert again.onnx_path == files[0] and files[0].stat().st_mtime_ns == stamp
    a = Predictor(tiny).predict(scene[0]["image"], K=scene[0]["K"])
    b = again.predict(scene[0]["image"], K=scene[0]["K"])
    assert np.abs(a.vertices - b.vertices).max() < 5e-4


def test_export_errors(tmp_path):
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(build_model("tiny"), tmp_path / "x.onnx", exporter="tensorrt")
    with pytest.raises(ValueError, match="model"):
        export_onnx("tiny", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="onnx_path"):
        Predictor(None, runtime="onnx", onnx_path=tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_text("not a graph")
    with pytest.raises(ValueError, match="onnx_path"):
        Predictor(None, runtime="onnx", onnx_path=tmp_path / "junk.onnx")


def test_global_rotation_model_exports_with_its_rotation(tmp_path):
    torch.manual_seed(2)
    model = build_model("mobrecon-ghost-sil", input_size=64, template_residual=True, global_rotation=True).eval()
    with torch.no_grad():
        for layer in (model.rotation_head.mlp[0], model.rotation_head.mlp[-1]):  # rotations that vary
            torch.nn.init.normal_(layer.weight, std=3.0)
    path = export_onnx(model, tmp_path / "rot.onnx")
    assert onnx_metadata(path)["outputs"] == ["vertices", "keypoints_2d", "silhouette", "global_rotation"]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    x[1] = 0.2 * x[1]  # a darker image: other pooled features, another rotation
    with torch.inference_mode():
        ref = model(x)
    got = _ort(path, x)
    assert np.abs(got["global_rotation"] - ref["global_rotation"].numpy()).max() < 1e-4
    assert np.abs(got["vertices"] - ref["vertices"].numpy()).max() < 5e-4
    assert (ref["global_rotation"][0] - ref["global_rotation"][1]).abs().max() > 1e-3
