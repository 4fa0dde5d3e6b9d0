import json

import pytest
import torch

from handrecon.models import build_model, list_models, load_model, save_model


def test_presets_build_save_and_load(tmp_path):
    assert "tiny" in list_models()
    model = build_model("tiny", channels=[8, 8, 16, 16]).eval()
    assert model.config.channels == (8, 8, 16, 16)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out["vertices"].shape == (2, 778, 3) and out["keypoints_2d"].shape == (2, 21, 2)
    assert out["vertices_l4"].shape == (2, 49, 3)
    save_model(model, tmp_path / "m", extra={"note": "x"})
    info = json.loads((tmp_path / "m.json").read_text())
    assert info["preset"] == "tiny" and info["note"] == "x" and info["parameters"] > 0
    again = load_model(tmp_path / "m.safetensors").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["vertices"], again(x)["vertices"])


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")
    with pytest.raises(ValueError, match="widht"):
        build_model("tiny", widht=3)
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_model(tmp_path / "missing")
    save_model(build_model("tiny"), tmp_path / "a")
    (tmp_path / "b.json").write_text((tmp_path / "a.json").read_text())
    save_model(build_model("tiny", channels=[8, 8, 8, 8]), tmp_path / "b_other")
    (tmp_path / "b_other.safetensors").rename(tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match="do not fit"):
        load_model(tmp_path / "b")
    with pytest.raises(ValueError, match="image"):
        build_model("tiny")(torch.zeros(3, 64, 64))
