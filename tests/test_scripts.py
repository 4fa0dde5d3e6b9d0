"""scripts/learning_curve.py: where a multi-stage curve marks the start of each stage; scripts/oracle_keypoints.py:
the 2D head swapped for given keypoints; scripts/error_breakdown.py: errors grouped by occlusion and visibility;
scripts/root_oracle.py: roots registered from a set's own labels."""

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
