"""MobRecon presets and ablations: the output interface, gradients reaching every parameter, the paper's
network sizes (Table 4), the consistency losses on two views, saving and training through the engine."""

import pytest
import torch

from handrecon import losses
from handrecon.models import build_model, list_models, load_model, save_model
from handrecon.nn import count_complexity




PRESETS = ["mobrecon-dense", "mobrecon-ghost", "mobrecon-dense-sil", "mobrecon-ghost-sil"]
# paper Table 4 (parameters, multiply-adds at 128 px); the bound is 5%
PAPER = {"mobrecon-dense": (8.1e6, 439.9e6), "mobrecon-ghost": (5.3e6, 123.5e6)}


def test_presets_are_registered():
    assert set(PRESETS) <= set(list_models())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_outputs_and_every_parameter_is_used(name):
    model = build_model(name)
    c = count_complexity(model)
    assert c["unused"] == [], c["unused"][:5]
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128))
    assert out["vertices"].shape == (2, 778, 3) and out["keypoints_2d"].shape == (2, 21, 2)
    assert ("silhouette" in out) == name.endswith("-sil")
    if name.endswith("-sil"):
        assert out["silhouette"].shape == (2, 1, 64, 64)
    # root-relative metres at the scale of a hand, even untrained
    assert out["vertices"].abs().max() < 1.0 and torch.isfinite(out["vertices"]).all()


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_match_table_4(name):
    c = count_complexity(build_model(name))
    params, macs = PAPER[name]
    assert abs(c["parameters"] / params - 1) < 0.05, c["parameters"]
    assert abs(c["macs"] / macs - 1) < 0.05, c["macs"]


def test_decoder_sizes_match_table_4():
    # DSConv decoder 19.5 M / 0.1 M; SpiralConv++ 159.0 M / 1.0 M: the difference between the two models
    ds = count_complexity(build_model("mobrecon-dense"))
    sp = count_complexity(build_model("mobrecon-dense", mesh_conv="spiralconv"))
    assert abs((sp["macs"] - ds["macs"]) / (159.0e6 - 19.5e6) - 1) < 0.05
    assert abs((sp["parameters"] - ds["parameters"]) / (1.0e6 - 0.1e6) - 1) < 0.1


@pytest.mark.parametrize("overrides", [
    {"keypoint_head": "heatmap"},
    {"keypoint_head": "regression"},
    {"lifting": "global"},
    {"mesh_conv": "spiralconv"},
    {"keypoint_head": "regression", "lifting": "global", "silhouette": True},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_ablations_build_run_and_use_every_parameter(overrides):
    model = build_model("mobrecon-dense", input_size=64, **overrides)
    assert count_complexity(model)["unused"] == []
    out = model.eval()(torch.rand(1, 3, 64, 64))
    assert out["vertices"].shape == (1, 778, 3) and out["keypoints_2d"].shape == (1, 21, 2)
    if overrides.get("keypoint_head") == "heatmap":
        assert out["heatmaps"].shape == (1, 21, 32, 32)


def test_global_lifting_is_the_papers_3_2m_layer():
    pvl = count_complexity(build_model("mobrecon-dense"))["parameters"]
    fc = count_complexity(build_model("mobrecon-dense", lifting="global"))["parameters"]
    assert abs((fc - pvl) - 3.2e6) < 0.1e6


def test_bad_config_and_input_are_named():
    with pytest.raises(ValueError, match="encoder"):
        build_model("mobrecon-dense", encoder="resnet")
    with pytest.raises(ValueError, match="input_size"):
        build_model("mobrecon-dense", input_size=100)
    model = build_model("mobrecon-ghost").eval()
    with pytest.raises(ValueError, match="128x128"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="image"):
        model(torch.rand(1, 1, 128, 128))


def test_consistency_losses_vanish_for_identical_views_and_not_otherwise():
    model = build_model("mobrecon-ghost", input_size=64).eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(image), model(image)
        eye_affine = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
        eye = torch.eye(3).expand(2, 3, 3)
        assert losses.consistency_2d(a["keypoints_2d"], b["keypoints_2d"], eye_affine) == 0
        assert losses.consistency_3d(a["vertices"], b["vertices"], eye) == 0
        flipped = model(image.flip(-1))
        assert losses.consistency_2d(a["keypoints_2d"], flipped["keypoints_2d"], eye_affine) > 0
        rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
        assert losses.consistency_3d(a["vertices"], b["vertices"], rot) > 0


def test_save_load_round_trip(tmp_path):
    model = build_model("mobrecon-ghost-sil", input_size=64).eval()
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for key, value in model(x).items():
            assert torch.equal(value, again(x)[key]), key


def test_two_view_training_with_consistency_runs_through_the_engine(tmp_path):
    from handrecon.synth import SceneConfig, write_dataset
    from handrecon.train import config_from_dict, train

    root = write_dataset(tmp_path / "set", 8, split="training", seed=0, config=SceneConfig(size=64),
                         workers=0, progress=False)
    cfg = config_from_dict({
        "model": {"name": "mobrecon-ghost-sil", "overrides": {"input_size": 64}},
        "data": {"train": [{"kind": "freihand", "root": str(root)}], "batch_size": 4, "two_view": True},
        "loss": {"mesh": [5.0], "keypoint_2d": 1.0, "silhouette": 0.5, "normal": 0.1, "edge": 5.0,
                 "consistency_2d": 1.0, "consistency_3d": 5.0},
        "optim": {"lr": 1e-3},
        "train": {"steps": 3, "log_every": 1, "checkpoint_every": 1000, "progress": False, "tensorboard": False},
    }, [])
    summary = train(cfg, tmp_path / "run")
    assert summary["step"] == 3 and all(torch.isfinite(torch.tensor(summary["history"])))
    import csv
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert float(rows[-1]["consistency_2d"]) > 0 and float(rows[-1]["consistency_3d"]) > 0
    assert load_model(tmp_path / "run" / "model").preset == "mobrecon-ghost-sil"


def test_bench_complexity_table():
    from handrecon.bench import bench_complexity, format_complexity

    result = bench_complexity(["mobrecon-ghost"])
    text = format_complexity(result)
    assert result["mobrecon-ghost"]["unused"] == [] and "MobRecon Table 4" in text and "mobrecon-ghost" in text


def test_template_residual_starts_at_the_template_and_learns_everywhere():
    from handrecon.models.common import default_template

    model = build_model("mobrecon-ghost-sil", input_size=64, template_residual=True)
    with torch.no_grad():
        v = model.eval()(torch.rand(2, 3, 64, 64))["vertices"]
    assert torch.equal(v, default_template().expand(2, -1, -1))
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(2):  # the zeroed last layer gets a gradient first, then everything behind it
        opt.zero_grad()
        out = model(torch.rand(2, 3, 64, 64))
        (out["vertices"] - 0.01).abs().mean().backward()
        opt.step()
    dead = [n for n, p in model.named_parameters()
            if n.startswith("decoder") and (p.grad is None or p.grad.abs().sum() == 0)]
    assert dead == []


def test_global_rotation_decodes_in_the_canonical_frame_and_rotates():
    from handrecon.hand.lbs import axis_angle_to_matrix
    from handrecon.models.common import default_template

    model = build_model("mobrecon-ghost-sil", input_size=64, template_residual=True, global_rotation=True)
    assert count_complexity(model)["unused"] == []
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model.eval()(image)
        # a new head starts at R = I: the template, as without the head
        assert torch.equal(out["global_rotation"], torch.eye(3).expand(2, 3, 3))
        assert torch.allclose(out["vertices"], default_template().expand(2, -1, -1), atol=1e-7)
        # the vertices are the canonical decoder output rotated by the head's rotation
        R = axis_angle_to_matrix(torch.tensor([0.3, -1.2, 0.5]))
        model.rotation_head.mlp[-1].bias.copy_(torch.cat([R[:, 0], R[:, 1]]))
        rotated = model(image)
    assert torch.allclose(rotated["global_rotation"][0], R, atol=1e-6)
    assert torch.allclose(rotated["vertices"], default_template() @ R.T, atol=1e-6)
    # the decoder's own output is given too, for the canonical_mesh loss term
    assert torch.allclose(rotated["vertices_canonical"], default_template().expand(2, -1, -1), atol=1e-7)
    R_out = rotated["global_rotation"]
    assert torch.allclose(rotated["vertices"], rotated["vertices_canonical"] @ R_out.transpose(1, 2))
