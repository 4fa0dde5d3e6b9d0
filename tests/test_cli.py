"""The command line: help texts, demo outputs, hand export and its errors."""

import subprocess
import sys

import pytest
import trimesh

from handrecon.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "hand" in out


@pytest.mark.parametrize("command", ["demo", "hand"])
def test_each_subcommand_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out


def test_demo_predicts_the_bundled_images(tmp_path):
    import json

    import numpy as np

    from handrecon.demo import demo_samples

    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "handrecon.cli", "demo", "--out", str(out), "--quiet"],
                            capture_output=True, text=True, check=True)
    samples = demo_samples()
    assert len(samples) == 6 and any(s["left"] for s in samples)
    for s in samples:
        stem = s["path"].stem
        assert stem in result.stdout
        mesh = trimesh.load(out / f"{stem}.obj", process=False)
        assert len(mesh.vertices) == 778 and np.all(mesh.vertices[:, 2] > 0)  # in front of the camera
        info = json.loads((out / f"{stem}.json").read_text())
        assert np.allclose(info["K"], s["K"]) and info["left"] == s["left"]
        assert all(np.isfinite(v) for v in info["errors_mm"].values())
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("summary.png", "contact_sheet.png", "synthetic_samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "hand_00.png" in (out / "index.html").read_text()
    assert "mean" in result.stdout and "summary.png" in result.stdout
    fist = trimesh.load(out / "poses" / "hand_fist.obj", process=False)
    assert len(fist.vertices) == 778 and len(fist.faces) == 1552
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave no temporary files


def test_hand_export_and_errors(tmp_path, capsys):
    path = tmp_path / "fist.ply"
    assert main(["hand", "--pose", "fist", "--shape", "1,0,-1", "--out", str(path)]) == 0
    assert len(trimesh.load(path, process=False).vertices) == 778
    assert main(["hand", "--shape", "1,2,3,4,5,6,7,8,9,10,11", "--out", str(path)]) == 2
    assert "--shape" in capsys.readouterr().err
    assert main(["hand", "--model", "mano", "--out", str(path)]) == 2
    assert "MANO_RIGHT.pkl" in capsys.readouterr().err
