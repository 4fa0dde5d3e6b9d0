"""scripts/learning_curve.py: where a multi-stage curve marks the start of each stage."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "learning_curve.py"


def _script():
    spec = importlib.util.spec_from_file_location("learning_curve", SCRIPT)
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
