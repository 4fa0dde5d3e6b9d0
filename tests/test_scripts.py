"""scripts/learning_curve.py: where a multi-stage curve marks the start of each stage; scripts/oracle_keypoints.py:
the 2D head swapped for given keypoints; scripts/error_breakdown.py: errors grouped by occlusion and visibility;
scripts/root_oracle.py: roots registered from a set's own labels; scripts/bone_lengths.py: predicted against labelled
bone lengths; scripts/score_default_model.sh: the bundled model's scores in one run; scripts/average_weights.py:
the uniform average of saved models."""

import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str = "learning_curve"):
    """scripts/NAME.py imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_starts_marks_each_later_stage_at_the_previous_total():
    script = _script()
    # stage 1 rows written before stages were numbered, stage 2 with only its own sample count, stage 3 numbered
    rows = [{"samples": 100}, {"samples": 200},
            {"samples": 300, "stage_samples": 100}, {"samples": 400, "stage_samples": 200},
            {"samples": 450, "stage_samples": 50, "stage": 3}, {"samples": 500, "stage_samples": 100, "stage": 3}]
    assert [script.stage_of(r) for r in rows] == [1, 1, 2, 2, 3, 3]
    assert script.stage_starts(rows) == [(2, 200), (3, 400)]
    assert script.stage_starts(rows[:2]) == []


def test_oracle_keypoints_replaces_the_2d_head_only_inside_the_block():
    """scripts/oracle_keypoints.py: the model reads the given keypoints inside the block, its own after it."""
    import torch

    from handrecon.models import build_model

    script = _script("oracle_keypoints")
    torch.manual_seed(0)
    model = build_model("mobrecon-ghost-sil").eval()
    image = torch.rand(2, 3, 128, 128)
    uv = torch.rand(2, 21, 2)
    with torch.inference_mode():
        own = model(image)
        with script.keypoints_replaced(model, uv):
            replaced = model(image)
        after = model(image)
    assert torch.allclose(replaced["keypoints_2d"], uv * 128 - 0.5)
    assert not torch.allclose(replaced["vertices"], own["vertices"])  # pose pooling read the given keypoints
    assert torch.equal(after["keypoints_2d"], own["keypoints_2d"]) and torch.equal(after["vertices"], own["vertices"])


def test_error_breakdown_groups_per_sample_errors_by_the_scene_metadata(tmp_path):
    import json

    script = _script("error_breakdown")
    errors = [10.0, 20.0, 30.0, 40.0]
    lines = "".join(f"{i},{e}\n" for i, e in enumerate(errors))
    (tmp_path / "per_sample.csv").write_text("index,pa_mpjpe_mm,root_error_mm\n" + lines.replace("\n", ",5\n"))
    meta = [{"occluded": False, "visible": [True] * 4}, {"occluded": False, "visible": [True, True, True, False]},
            {"occluded": True, "visible": [True, False, False, False]}, {"occluded": True, "visible": [False] * 4}]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    rows = {name: (n, v) for name, n, v in script.breakdown(str(tmp_path / "per_sample.csv"),
                                                             str(tmp_path / "meta.json"))}
    assert rows["all: mean"] == (4, 25.0) and rows["all: share under 12 mm"] == (4, 0.25)
    assert rows["occluder"] == (2, 35.0) and rows["no occluder"] == (2, 15.0)
    assert rows["all keypoints visible"] == (1, 10.0)
    assert rows["visible keypoints 75%-100%"] == (1, 20.0)
    assert rows["visible keypoints 0%-50%"] == (2, 35.0)
    roots = dict((name, v) for name, _, v in script.breakdown(str(tmp_path / "per_sample.csv"),
                                                               str(tmp_path / "meta.json"), column="root_error_mm"))
    assert roots["all: mean"] == 5.0 and roots["all: share under 12 mm"] == 1.0


def test_root_oracle_1d_root_needs_full_hand_masks_under_occlusion(tmp_path):
    """From perfect labels the 1D root of an occluded hand is exact with full-hand masks and off with visible ones."""
    import json

    import numpy as np

    from handrecon.synth import AppearanceConfig, SceneConfig, write_dataset

    script = _script("root_oracle")
    errors = {}
    for mask in ("visible", "full"):
        config = SceneConfig(size=128, appearance=AppearanceConfig(occluder_probability=1.0), mask=mask)
        write_dataset(tmp_path / mask, 6, split="evaluation", seed=3, config=config, workers=0, progress=False)
        errors[mask] = script.oracle_root_errors(str(tmp_path / mask))
    assert np.all(errors["full"]["2d"] < 1e-4)  # exact 2D keypoints of an exact mesh
    assert np.all(errors["full"]["1d"] < 0.01)
    assert errors["visible"]["1d"].mean() > 3 * errors["full"]["1d"].mean()
    # every hand at the mean size: the depth follows the size error, so the roots move off
    resized = script.oracle_root_errors(str(tmp_path / "full"), size="mean")
    assert resized["2d"].mean() > 10 * max(errors["full"]["2d"].mean(), 1e-4)
    # predictions 10% larger than the labelled hands: a scaled hand projects the same from 1.1x as far
    from handrecon.data import FreiHAND

    data = FreiHAND(str(tmp_path / "full"), "evaluation")
    kp = np.stack([data[i]["keypoints"] for i in range(len(data))]).astype(np.float64)
    (tmp_path / "pred.json").write_text(json.dumps([(kp * 1.1).tolist(), np.zeros((len(kp), 778, 3)).tolist()]))
    larger = script.oracle_root_errors(str(tmp_path / "full"), size="predicted", pred=str(tmp_path / "pred.json"))
    assert np.allclose(larger["2d"], 0.1 * np.linalg.norm(kp[:, 0], axis=-1), atol=1e-4)
    assert np.allclose(larger["size_used"], 1.1 * larger["size_labelled"])


def test_root_oracle_hand_sizes_scale_with_the_hand():
    import numpy as np
    import pytest

    script = _script("root_oracle")
    kp = np.random.default_rng(0).normal(size=(1, 21, 3))
    kp[:, 0] = 0
    sizes = script.hand_sizes(np.concatenate([kp, 2 * kp]))
    assert sizes[1] == pytest.approx(2 * sizes[0])
    with pytest.raises(ValueError, match="size must be one of"):
        script.oracle_root_errors("unused", size="median")
    with pytest.raises(ValueError, match="pred .* is needed with size='predicted'"):
        script.oracle_root_errors("unused", size="predicted")


def test_stage_ends_and_log_fit_project_samples_for_a_target():
    import math

    import pytest

    script = _script()
    rows = [{"samples": 100}, {"samples": 200}, {"samples": 300, "stage_samples": 100},
            {"samples": 400, "stage_samples": 200, "stage": 2}, {"samples": 800, "stage_samples": 400, "stage": 3}]
    assert [r["samples"] for r in script.stage_ends(rows)] == [200, 400, 800]
    # error = 30 - 2 ln(samples): the fit recovers the line and where it reaches 10
    samples = [1e5, 2e5, 4e5, 8e5]
    slope, intercept = script.fit_log_samples(samples, [30 - 2 * math.log(s) for s in samples])
    assert slope == pytest.approx(-2) and intercept == pytest.approx(30)
    assert script.samples_to_reach(slope, intercept, 10.0) == pytest.approx(math.exp(10))
    assert script.samples_to_reach(0.5, intercept, 10.0) is None  # a rising curve never gets there
    with pytest.raises(ValueError, match="samples must be positive"):
        script.fit_log_samples([0, 10], [1, 2])
    with pytest.raises(ValueError, match="need >= 2"):
        script.fit_log_samples([10], [1])


def test_bone_lengths_tells_shortened_fingertips_from_a_smaller_hand():
    """scripts/bone_lengths.py: halved distal bones show as ratio 0.5 there and 1 elsewhere, and relengthening
    them recovers the labels; a uniformly smaller, turned hand shows as ratio 0.8 everywhere, an alignment
    scale of 1.25 and no aligned error."""
    import numpy as np
    import pytest

    script = _script("bone_lengths")
    labelled = np.random.default_rng(0).normal(scale=0.05, size=(6, 21, 3))
    tips, dips = [8, 12, 16, 20], [7, 11, 15, 19]
    short = labelled.copy()
    short[:, tips] = (labelled[:, tips] + labelled[:, dips]) / 2
    result = script.compare(short, labelled)
    distal = [7, 11, 15, 19]   # bone index of dip -> tip of the four fingers
    assert result["ratio"][distal] == pytest.approx(0.5)
    assert np.delete(result["ratio"], distal) == pytest.approx(1.0)
    assert result["segment_ratio"] == pytest.approx([1.0, 1.0, 1.0, 0.5])
    assert result["level_error"][-1] > result["level_error"][0] and result["pa_mpjpe"] > 1e-3
    assert result["pa_mpjpe_labelled_lengths"] < 1e-6   # metres

    angle = 0.7
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    smaller = script.compare(0.8 * labelled @ turn.T + 0.1, labelled)
    assert smaller["ratio"] == pytest.approx(0.8) and smaller["alignment_scale"] == pytest.approx(1.25)
    assert smaller["pa_mpjpe"] < 1e-6
    with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
        script.compare(labelled[:, :20], labelled[:, :20])


def test_score_default_model_checks_its_argument_before_scoring(tmp_path):
    """A float32 run that is not there is named and nothing is scored (no eval folder, no rendered set)."""
    import subprocess

    script = SCRIPTS / "score_default_model.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script), "runs/no-such-run/model"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert str(tmp_path / "runs/no-such-run/model") in result.stderr and ".safetensors" in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "outputs").exists()


def test_score_default_model_runs_only_scripts_that_exist():
    """Every scripts/*.py the scoring script calls is in the repository (a rename would break it late)."""
    import re

    text = (SCRIPTS / "score_default_model.sh").read_text()
    called = set(re.findall(r"scripts/(\w+\.py)", text))
    assert {"error_breakdown.py", "bone_lengths.py", "root_oracle.py"} <= called
    assert all((SCRIPTS / name).is_file() for name in called)


def test_average_weights_averages_floats_keeps_integer_buffers_and_refuses_mismatches():
    import pytest
    import torch

    script = _script("average_weights")
    a = {"w": torch.tensor([1.0, 3.0]), "h": torch.tensor([2.0], dtype=torch.float16), "n": torch.tensor(4)}
    b = {"w": torch.tensor([3.0, 7.0]), "h": torch.tensor([4.0], dtype=torch.float16), "n": torch.tensor(9)}
    avg = script.average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 5.0]))
    assert avg["h"].dtype == torch.float16 and avg["h"].item() == 3.0
    assert avg["n"].item() == 9  # batch-norm step counts: the last model's
    with pytest.raises(ValueError, match="other tensors"):
        script.average_state_dicts([a, {"w": b["w"]}])
    with pytest.raises(ValueError, match="several shapes"):
        script.average_state_dicts([a, dict(b, w=torch.zeros(3))])


def test_average_weights_cli_writes_a_loadable_average_of_saved_models(tmp_path, monkeypatch):
    import sys

    import pytest
    import torch

    from handrecon.models import build_model
    from handrecon.models.registry import load_model, save_model

    script = _script("average_weights")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_model(build_model("tiny"), tmp_path / f"m{seed}")
        paths.append(str(tmp_path / f"m{seed}"))
    monkeypatch.setattr(sys, "argv", ["average_weights.py", str(tmp_path / "avg"), *paths])
    script.main()
    avg, m0, m1 = (load_model(tmp_path / n) for n in ("avg", "m0", "m1"))
    for key, value in avg.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (m0.state_dict()[key] + m1.state_dict()[key]) / 2), key
    monkeypatch.setattr(sys, "argv", ["average_weights.py", str(tmp_path / "one"), paths[0]])
    with pytest.raises(SystemExit, match="at least two"):
        script.main()
