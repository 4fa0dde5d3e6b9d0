"""The trainer on small synthetic sets rendered in the test: the loss falls, files and checkpoints load back
(weights_only=True, load_model), resuming is bit-exact (in-process and worker loading), the NaN guard stops
with a clear message and writes nothing, and the shipped config trains on on-the-fly synthetic data."""

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from handrecon.models import load_model
from handrecon.train import ConfigError, TrainingError, load_config, train
from handrecon.train.objective import Objective

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _same_weights(a, b):
    wa, wb = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_tiny_model_learns_and_writes_loadable_files(make_config, tmp_path):
    out = tmp_path / "run"
    cfg = make_config("train.steps=30", "train.log_every=5", "train.val_every=15", "train.checkpoint_every=10",
                      val=True)
    summary = train(cfg, out)
    losses = summary["history"]
    assert len(losses) == 30 and summary["step"] == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)

    # the model for use: load_model rebuilds it; the JSON holds the step and the training config
    model = load_model(out / "model")
    info = __import__("json").loads((out / "model.json").read_text())
    assert info["preset"] == "tiny" and info["step"] == 30 and info["training_config"]["train"]["steps"] == 30
    model.eval()
    with torch.no_grad():
        pred = model(torch.zeros(1, 3, 64, 64))
    assert pred["vertices"].shape == (1, 778, 3)

    # the resumable state: plain data readable with weights_only=True, and its own loadable model
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 30 and state["epoch"] == 5 and state["batch_in_epoch"] == 0
    assert {"optimizer", "scheduler", "scaler", "rng", "config"} <= set(state)
    assert isinstance(state["rng"][0]["numpy"]["keys"], torch.Tensor)
    assert _same_weights(out, out / "checkpoint")
    load_model(out / "checkpoint" / "model")
    assert not [p for p in out.rglob(".*") if p.name != "."]        # no temporary files or folders left

    rows = _rows(out / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    assert {"total", "mesh", "keypoint_3d", "keypoint_2d", "normal", "edge", "lr", "images_per_s"} <= set(rows[0])
    val = _rows(out / "val_log.csv")
    assert [int(r["step"]) for r in val] == [15, 30]
    assert 0 < float(val[-1]["pa_mpjpe_mm"]) < 200 and 0 < float(val[-1]["pa_mpvpe_mm"]) < 200
    for name in ("losses.png", "val.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_config(out / "config.yaml") == cfg

    # a folder holding a run is not overwritten without --resume
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, out)


def test_resume_is_bit_exact_in_process(make_config, tmp_path):
    """12 steps straight = 4 steps, stop, resume to 12 (6 batches per epoch: resumes mid-epoch, then crosses one)."""
    straight = train(make_config("train.steps=12"), tmp_path / "a")
    train(make_config("train.steps=4", "train.checkpoint_every=4"), tmp_path / "b")
    resumed = train(make_config("train.steps=12"), tmp_path / "b", resume=True)
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    assert resumed["history"] == straight["history"][4:]
    assert [int(r["step"]) for r in _rows(tmp_path / "b" / "train_log.csv")] == [4, 8, 12]


def test_resume_is_bit_exact_with_workers_mix_and_two_views(make_config, synth_sets, tmp_path):
    """Two worker processes, a weighted mix of two sources, two augmented views with consistency losses,
    AdamW and gradient clipping: 15 steps straight = 9 steps + resume."""
    _, val_root = synth_sets
    extra = ["data.num_workers=2", "data.batch_size=6", "data.two_view=true", "data.mix_length=40",
             "data.train.1.kind=freihand", f"data.train.1.root={val_root}", "data.train.1.split=evaluation",
             "data.train.1.weight=0.5", "loss.consistency_2d=0.5", "loss.consistency_3d=0.5",
             "optim.name=adamw", "optim.weight_decay=1e-4", "optim.grad_clip=1.0"]
    straight = train(make_config(*extra, "train.steps=15"), tmp_path / "a")
    train(make_config(*extra, "train.steps=9", "train.checkpoint_every=9"), tmp_path / "b")
    resumed = train(make_config(*extra, "train.steps=15"), tmp_path / "b", resume=True)
    assert "consistency_2d" in _rows(tmp_path / "a" / "train_log.csv")[0]
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    assert resumed["history"] == straight["history"][9:]


def test_channels_last_trains_like_the_default_layout(make_config, tmp_path):
    """train.channels_last keeps the convolution weights NHWC through the run, saves plain contiguous weights,
    and follows the default layout's losses and weights up to float rounding."""
    from handrecon.train.trainer import Trainer

    default = train(make_config("train.steps=6"), tmp_path / "default")
    trainer = Trainer(make_config("train.steps=6", "train.channels_last=true"), tmp_path / "nhwc")
    # A convolution bias that a BatchNorm follows gets no gradient in exact arithmetic (the norm subtracts the
    # batch mean), so Adam turns its rounding-level gradient into full-size steps in either layout; those biases
    # and the running means they shift are left out of the weight comparison.
    cancelled = set()
    for name, seq in trainer.model.named_modules():
        if isinstance(seq, torch.nn.Sequential):
            for i, (a, b) in enumerate(zip(seq, seq[1:])):
                if isinstance(a, torch.nn.Conv2d) and a.bias is not None and isinstance(b, torch.nn.BatchNorm2d):
                    cancelled |= {f"{name}.{i}.bias", f"{name}.{i + 1}.running_mean"}
    try:
        convs = [m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                             for w in convs)
        nhwc = trainer.fit()
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    finally:
        trainer.close()
    assert nhwc["history"] == pytest.approx(default["history"], rel=1e-4)
    wa = load_file(str(tmp_path / "default" / "model.safetensors"))
    wb = load_file(str(tmp_path / "nhwc" / "model.safetensors"))
    assert wa.keys() == wb.keys() and cancelled <= wa.keys()
    assert all(torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-3, atol=1e-4) for k in wa if k not in cancelled)
    load_model(tmp_path / "nhwc" / "model")


def test_nan_guard_stops_with_a_clear_message_and_writes_nothing(make_config, tmp_path):
    out = tmp_path / "diverged"
    with pytest.raises(TrainingError) as exc:
        train(make_config("optim.lr=1e30", "train.steps=10", "train.checkpoint_every=5"), out)
    message = str(exc.value)
    assert "step 2" in message and "not finite" in message and "mesh=nan" in message and "optim.lr" in message
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint").exists()


def test_nan_guard_catches_non_finite_gradients_after_a_checkpoint(make_config, tmp_path, monkeypatch):
    original = Objective.__call__

    def poisoned(self, out, batch, pairs=None, terms=None):
        t = original(self, out, batch, pairs, terms)
        if self.calls >= 3:  # finite loss (0 added), NaN gradient: d sqrt(x) / dx at 0
            t["mesh"] = t["mesh"] + torch.sqrt(out["vertices"] * 0).sum()
        self.calls += 1
        return t

    monkeypatch.setattr(Objective, "calls", 0, raising=False)
    monkeypatch.setattr(Objective, "__call__", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"step 4: the gradient is not finite \(in encoder"):
        train(make_config("train.checkpoint_every=2"), out)
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 2        # the checkpoint before the failure is intact; nothing later was written
    assert load_model(out / "model").config.input_size == 64
    assert __import__("json").loads((out / "model.json").read_text())["step"] == 2


def test_shipped_config_trains_on_the_fly_synthetic_data(tmp_path):
    cfg = load_config(CONFIGS / "tiny-synth.yaml", [
        "train.steps=2", "train.val_every=0", "data.num_workers=0", "data.batch_size=4", "data.train.0.size=64",
        "data.val.length=4", "data.val.size=64"])
    summary = train(cfg, tmp_path / "synth")
    assert summary["step"] == 2 and summary["val"]["samples"] == 4
    assert (tmp_path / "synth" / "model.safetensors").is_file()


def test_gpu_recipe_trains_from_scratch_with_every_term_it_weights(tmp_path):
    """The GPU recipe, shrunk to two CPU steps: built from scratch, each weighted loss term applies (none is
    skipped for want of a model output or a label) and is logged finite."""
    import math

    cfg = load_config(CONFIGS / "mobrecon-ghost-sil-synth-gpu.yaml", [
        "train.steps=2", "train.log_every=1", "train.val_every=0", "data.num_workers=0", "data.batch_size=2",
        "data.val.length=2", "train.progress=false", "train.tensorboard=false"])
    summary = train(cfg, tmp_path / "gpu-recipe")
    assert summary["step"] == 2
    row = _rows(tmp_path / "gpu-recipe" / "train_log.csv")[-1]
    weighted = {k for k, w in vars(cfg.loss).items() if (max(w) if isinstance(w, list) else w) > 0}
    assert weighted == {"mesh", "canonical_mesh", "keypoint_3d", "rotation", "keypoint_2d", "silhouette",
                        "normal", "edge"}
    assert all(math.isfinite(float(row[k])) and float(row[k]) > 0 for k in weighted), row


def test_init_partial_adds_a_rotation_head_to_saved_weights_and_trains_it(synth_sets, tmp_path):
    from handrecon.models import build_model, save_model
    from handrecon.train import config_from_dict

    base = build_model("mobrecon-ghost-sil", input_size=64, template_residual=True)
    marked = next(n for n, p in base.named_parameters() if n.startswith("encoder") and p.ndim == 4)
    with torch.no_grad():
        dict(base.named_parameters())[marked].fill_(0.123)  # no fresh initialisation looks like this
    save_model(base, tmp_path / "base")

    def config(partial):
        return config_from_dict({
            "model": {"name": "mobrecon-ghost-sil", "init": str(tmp_path / "base.safetensors"),
                      "init_partial": partial,
                      "overrides": {"input_size": 64, "template_residual": True, "global_rotation": True}},
            "data": {"train": [{"kind": "freihand", "root": synth_sets[0]}], "batch_size": 4},
            "loss": {"mesh": [5.0], "rotation": 1.0},
            "optim": {"lr": 1e-3},
            "train": {"steps": 3, "log_every": 1, "checkpoint_every": 1000, "progress": False},
        }, [])

    with pytest.raises(ConfigError, match=r"model\.init.*missing.*rotation_head.*init_partial"):
        train(config(False), tmp_path / "strict")
    summary = train(config(True), tmp_path / "run")
    assert summary["step"] == 3
    rows = _rows(tmp_path / "run" / "train_log.csv")
    assert float(rows[0]["rotation"]) > 0  # synthetic labels hold the global rotation
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert (trained[marked] - 0.123).abs().max() < 0.01  # started from model.init (3 Adam steps of 1e-3)
    assert any(k.startswith("rotation_head") for k in trained)
