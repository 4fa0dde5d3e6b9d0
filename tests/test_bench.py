"""handrecon bench on small settings: every figure present, positive and consistent (speed targets themselves
are measured by the command, never asserted here)."""

import json

import pytest

from handrecon import bench
from handrecon.cli import main




def test_matmul_peak_is_a_positive_rate():
    assert bench.matmul_peak_gflops(1, size=256, repeats=3) > 0.1


def test_bench_models_reports_every_setting(tmp_path):
    out = tmp_path / "models.json"
    result = bench.bench_models(("tiny",), batches=(1, 3), threads=(1,), repeats=3, registration=False,
                                predict=False, out_json=out, progress=False)
    runs = result["models"]["tiny"]["runs"]
    assert {(r["runtime"], r["batch"]) for r in runs} == {("torch", 1), ("torch", 3), ("onnx", 1), ("onnx", 3)}
    for r in runs:
        assert r["ms"] > 0 and r["images_per_s"] == pytest.approx(1000 * r["batch"] / r["ms"])
        assert 0 < r["peak_fraction"] == pytest.approx(r["gflops"] / result["peak_gflops"]["1"])
    assert json.loads(out.read_text())["models"]["tiny"]["macs"] == result["models"]["tiny"]["macs"] > 0
    text = bench.format_models(result)
    assert "tiny" in text and "onnx" in text and "% peak" in text


def test_bench_cli_complexity(capsys):
    assert main(["bench", "--complexity", "--presets", "mobrecon-ghost"]) == 0
    out = capsys.readouterr().out
    assert "mobrecon-ghost" in out and "MobRecon Table 4" in out
