"""The FreiHAND-layout writer: determinism, parallel workers, resuming, reading back, the CLI."""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handrecon.cli import main
from handrecon.synth import SceneConfig, SceneGenerator, SyntheticHands, write_dataset
from handrecon.synth import writer as writer_module

SIZE = 96
NUM = 40  # more than one chunk of 32
CFG = SceneConfig(size=SIZE)


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "a"
    write_dataset(root, NUM, split="training", seed=3, config=CFG, workers=0, progress=False)
    return root


def test_layout_and_labels(written):
    files = _digest(written)
    for name in ("training_K.json", "training_xyz.json", "training_verts.json", "training_scale.json",
                 "training_pose.json", "training_meta.json", "handrecon.json"):
        assert name in files
    assert sum(k.startswith("training/rgb/") for k in files) == NUM
    assert sum(k.startswith("training/mask/") for k in files) == NUM
    assert not (written / ".parts").exists()
    assert not any(".tmp" in k for k in files)
    xyz = json.loads((written / "training_xyz.json").read_text())
    verts = json.loads((written / "training_verts.json").read_text())
    assert np.asarray(xyz).shape == (NUM, 21, 3) and np.asarray(verts).shape == (NUM, 778, 3)
    manifest = json.loads((written / "handrecon.json").read_text())
    assert manifest["seed"] == 3 and manifest["splits"]["training"] == {"num": NUM, "complete": True}
    assert manifest["config"]["size"] == SIZE
    # Labels equal what the generator makes for the same (seed, index), to the stored micrometres.
    direct = SceneGenerator(seed=3, config=CFG).generate([0, 33])
    for s in direct:
        assert np.abs(np.asarray(verts[s["index"]]) - s["vertices"]).max() < 2e-6
        image = cv2.imread(str(written / "training" / "rgb" / f"{s['index']:08d}.jpg"))[..., ::-1]
        mse = ((image.astype(float) - s["image"]) ** 2).mean()
        assert 10 * np.log10(255**2 / mse) > 30  # PSNR of JPEG quality 95 on a noisy image
        mask = cv2.imread(str(written / "training" / "mask" / f"{s['index']:08d}.jpg"), cv2.IMREAD_GRAYSCALE)
        assert ((mask >= 128) == s["mask"].astype(bool)).mean() > 0.995


def test_same_seed_same_files_with_parallel_workers(written, tmp_path):
    other = tmp_path / "b"
    write_dataset(other, NUM, split="training", seed=3, config=CFG, workers=2, progress=False)
    assert _digest(other) == _digest(written)


def test_interrupted_run_resumes_to_identical_files(written, tmp_path, monkeypatch):
    out = tmp_path / "c"
    real = writer_module._write_chunk
    calls = []

    def flaky(*args):
        if calls:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the second chunk
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(writer_module, "_write_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(out, NUM, split="training", seed=3, config=CFG, workers=0, progress=False)
    assert not (out / "training_xyz.json").exists()
    assert json.loads((out / "handrecon.json").read_text())["splits"]["training"]["complete"] is False
    monkeypatch.setattr(writer_module, "_write_chunk", real)
    write_dataset(out, NUM, split="training", seed=3, config=CFG, workers=0, progress=False)
    assert _digest(out) == _digest(written)
    # A finished dataset is left alone; a different request in the same folder is refused.
    write_dataset(out, NUM, split="training", seed=3, config=CFG, workers=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        write_dataset(out, NUM, split="training", seed=4, config=CFG, workers=0, progress=False)
    with pytest.raises(ValueError, match="samples"):
        write_dataset(out, NUM + 1, split="training", seed=3, config=CFG, workers=0, progress=False)


def test_reader_round_trip(written):
    from handrecon.data import FreiHAND

    ds = FreiHAND(written, split="training")
    assert len(ds) == NUM
    direct = SceneGenerator(seed=3, config=CFG).generate([5])[0]
    s = ds[5]
    assert s["has_vertices"] and s["has_mask"] and s["has_pose"]
    assert np.abs(s["vertices"] - direct["vertices"]).max() < 2e-6
    assert np.abs(s["keypoints"] - direct["keypoints"]).max() < 2e-6
    assert np.allclose(s["K"], direct["K"], atol=1e-5)
    assert np.allclose(s["pose"], direct["pose"], atol=1e-5)
    assert np.array_equal(s["visible"], direct["visible"])
    assert ((s["mask"] > 0) == direct["mask"].astype(bool)).mean() > 0.995


def test_on_the_fly_dataset_matches_the_generator_in_worker_processes():
    ds = SyntheticHands(6, seed=3, config=CFG)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2,
                                         multiprocessing_context=ds.multiprocessing_context)
    batches = list(loader)
    direct = SceneGenerator(seed=3, config=CFG).generate(range(6))
    images = torch.cat([b["image"] for b in batches]).numpy()
    assert np.array_equal(images, np.stack([d["image"] for d in direct]))
    assert batches[0]["has_vertices"].all()
    with pytest.raises(IndexError):
        ds[6]


def test_cli_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--num", "3", "--size", "64", "--workers", "0", "--quiet",
                 "--split", "evaluation"]) == 0
    assert (out / "evaluation_xyz.json").exists() and (out / "evaluation" / "rgb" / "00000002.jpg").exists()
    assert "wrote 3 evaluation samples" in capsys.readouterr().out
    assert main(["synth", str(out), "--num", "0", "--workers", "0"]) == 2
