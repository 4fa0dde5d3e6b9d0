"""Bundled models: bundling writes float16 weights that load back into float32 with the same outputs; the
shipped default loads offline, fits the size limit, and says how it was made."""

import json

import numpy as np
import pytest
import torch

from handrecon.models import build_model, save_model
from handrecon.models.pretrained import (DEFAULT_MODEL, MAX_BUNDLE_BYTES, bundle_model, list_pretrained,
                                         load_pretrained, pretrained_path)


def test_bundle_round_trip_in_float16(tmp_path, monkeypatch):
    model = build_model("mobrecon-ghost-sil", input_size=64).eval()
    save_model(model, tmp_path / "run" / "model")
    target = bundle_model(tmp_path / "run" / "model", "mine", "a test model", {"crop_scale": 1.4},
                          folder=tmp_path / "bundle")
    info = json.loads(target.with_suffix(".json").read_text())
    assert info["dtype"] == "float16" and info["crop_scale"] == 1.4 and info["preset"] == "mobrecon-ghost-sil"
    monkeypatch.setattr("handrecon.models.pretrained._folder", lambda: tmp_path / "bundle")
    assert list_pretrained() == {"mine": "a test model"}
    again = load_pretrained("mine")
    assert not again.training and all(p.dtype == torch.float32 for p in again.parameters())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x)["vertices"], again(x)["vertices"]
    assert (a - b).abs().max() < 5e-4  # float16 weights: sub-millimetre differences
    with pytest.raises(ValueError, match="no bundled model named 'other'"):
        load_pretrained("other")


def test_the_shipped_default_model():
    path = pretrained_path()
    assert path.stat().st_size <= MAX_BUNDLE_BYTES
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["name"] == DEFAULT_MODEL and not info.get("placeholder")
    for key in ("preset", "config", "description", "recipe", "crop_scale", "held_out"):
        assert key in info, key
    model = load_pretrained()
    assert model.pretrained_name == DEFAULT_MODEL
    with torch.no_grad():
        out = model(torch.rand(1, 3, model.input_size, model.input_size))
    assert {"vertices", "keypoints_2d", "silhouette"} <= set(out) and np.isfinite(out["vertices"].numpy()).all()
