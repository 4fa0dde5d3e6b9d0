"""``handrecon predict`` and ``handrecon export``: files per image, bad inputs named and skipped, exit codes,
--K parsing, name collisions, an ONNX file that loads."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import trimesh

from handrecon.cli import main
from handrecon.models import build_model, save_model
from handrecon.synth import SceneConfig, SceneGenerator




@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Saved weights of a small model (PATH.safetensors + PATH.json)."""
    torch.manual_seed(0)
    return save_model(build_model("tiny").eval(), tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def images():
    return [s["image"] for s in SceneGenerator(seed=2, config=SceneConfig(size=96)).generate([0, 1])]


def _write(path, image):
    ok, data = cv2.imencode(path.suffix, image[:, :, ::-1])
    assert ok
    path.write_bytes(data.tobytes())


@pytest.fixture
def folder(tmp_path, images):
    d = tmp_path / "in"
    d.mkdir()
    _write(d / "a.jpg", images[0])
    _write(d / "b.png", images[1])
    (d / "broken.jpg").write_text("this is not a JPEG")
    _write(d / "tiny.png", images[0][:8, :8])
    (d / "notes.txt").write_text("ignored: not an image suffix")
    return d


@pytest.mark.parametrize("command", ["predict", "export"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out


def test_predict_folder_skips_bad_inputs(folder, tmp_path, weights, capsys):
    out = tmp_path / "out"
    code = main(["predict", str(folder), "--model", str(weights), "--out", str(out), "--batch-size", "3",
                 "--K", "120,120,47.5,47.5"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg" in captured.err and "tiny.png" in captured.err and "too small" in captured.err
    assert "notes.txt" not in captured.err
    for stem in ("a", "b"):
        for suffix in (".obj", ".ply", ".json", ".png"):
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
        mesh = trimesh.load(out / f"{stem}.ply", process=False)
        info = json.loads((out / f"{stem}.json").read_text())
        assert len(mesh.vertices) == 778
        np.testing.assert_allclose(mesh.vertices, info["vertices"], atol=1e-5)
        assert info["K_source"] == "given" and info["K"] == [[120, 0, 47.5], [0, 120, 47.5], [0, 0, 1]]
        assert info["model"] == "tiny" and info["left"] is False and info["bbox"] is None
        for key in ("keypoints", "keypoints_2d", "root", "mode"):
            assert key in info
        overlay = cv2.imread(str(out / f"{stem}.png"))
        assert overlay.shape == (96, 96 + 96, 3)
    assert not (out / "broken.json").exists() and not (out / "tiny.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes: no temporary files


def test_predict_collisions_json_K_bbox_left(tmp_path, images, weights, capsys):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir()
    d2.mkdir()
    _write(d1 / "hand.png", images[0])
    _write(d2 / "hand.png", images[1])
    K_file = tmp_path / "K.json"
    K_file.write_text(json.dumps({"fx": 110, "fy": 111, "cx": 48, "cy": 47}))
    out = tmp_path / "out"
    code = main(["predict", str(d1 / "hand.png"), str(d2), "--model", str(weights), "--out", str(out),
                 "--K", str(K_file), "--bbox", "10,10,80,85", "--left", "--quiet", "--no-overlay"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    first, second = (json.loads((out / f"{n}.json").read_text()) for n in ("hand", "hand-2"))
    assert first["input"].endswith("one/hand.png") and second["input"].endswith("two/hand.png")
    assert first["K"] == [[110, 0, 48], [0, 111, 47], [0, 0, 1]] and first["K_source"] == "given"
    assert first["left"] is True and first["bbox"] == [10, 10, 80, 85]
    assert not (out / "hand.png").exists()  # --no-overlay
    assert "hand-2" in captured.out


def test_predict_assumed_K_warns(tmp_path, images, weights, capsys):
    path = tmp_path / "x.png"
    _write(path, images[0])
    out = tmp_path / "out"
    assert main(["predict", str(path), "--model", str(weights), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "assumed" in captured.err and "depth" in captured.err
    assert json.loads((out / "x.json").read_text())["K_source"] == "assumed-fov"


def test_predict_without_renderer_still_writes_meshes(tmp_path, images, weights, capsys, monkeypatch):
    import handrecon.predict as predict
    from handrecon.render import RendererUnavailable

    def unavailable(*args, **kwargs):
        raise RendererUnavailable("no EGL here")

    monkeypatch.setattr(predict, "overlay_image", unavailable)
    path = tmp_path / "x.png"
    _write(path, images[0])
    out = tmp_path / "out"
    assert main(["predict", str(path), "--model", str(weights), "--out", str(out), "--quiet"]) == 0
    assert "renderer is unavailable" in capsys.readouterr().err
    assert (out / "x.json").is_file() and (out / "x.obj").is_file() and not (out / "x.png").exists()


def test_predict_argument_errors(tmp_path, images, weights, capsys):
    path = tmp_path / "x.png"
    _write(path, images[0])
    base = ["predict", str(path), "--model", str(weights), "--out", str(tmp_path / "out"), "--quiet"]
    for extra, name in ((["--K", "1,2,3"], "--K"), (["--K", str(tmp_path / "nope.json")], "--K"),
                        (["--K", "0,100,50,50"], "--K"), (["--bbox", "1,2,3"], "--bbox"),
                        (["--bbox", "5,5,1,1"], "--bbox"), (["--batch-size", "0"], "--batch-size")):
        assert main(base + extra) == 2
        assert name in capsys.readouterr().err
    assert main(["predict", str(path), "--model", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "--model" in capsys.readouterr().err
    # a box off this image: the image fails, named
    assert main(base + ["--bbox", "500,500,600,600"]) == 1
    assert "x.png" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.jpg"), "--model", str(weights), "--quiet"]) == 1
    assert "missing.jpg" in capsys.readouterr().err


def test_export_writes_a_file_that_loads(tmp_path, weights, images, capsys):
    import onnxruntime as ort

    path = tmp_path / "model.onnx"
    assert main(["export", "--onnx", str(path), "--model", str(weights), "--opset", "17",
                 "--exporter", "torchscript"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(["vertices"], {"image": np.random.default_rng(0).random((2, 3, 64, 64), np.float32)})
    assert out[0].shape == (2, 778, 3)
    # and predict runs it
    img = tmp_path / "x.png"
    _write(img, images[0])
    assert main(["predict", str(img), "--model", str(path), "--out", str(tmp_path / "o"), "--quiet",
                 "--no-overlay"]) == 0
    assert json.loads((tmp_path / "o" / "x.json").read_text())["model"] == "tiny"
    assert main(["export", "--onnx", str(path), "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
