"""Fixtures of the training tests: small FreiHAND-layout sets rendered once per session, and a factory of
tiny-model configs training on them."""

from __future__ import annotations

import pytest

from handrecon.synth import SceneConfig, write_dataset
from handrecon.train import config_from_dict


@pytest.fixture(scope="session")
def synth_sets(tmp_path_factory):
    """(training root, evaluation root): 48 and 16 synthetic samples, 64x64, seeds 0 and 1."""
    base = tmp_path_factory.mktemp("train_sets")
    train_root = write_dataset(base / "train", 48, split="training", seed=0, config=SceneConfig(size=64),
                               workers=0, progress=False)
    val_root = write_dataset(base / "val", 16, split="evaluation", seed=1, config=SceneConfig(size=64),
                             workers=0, progress=False)
    return str(train_root), str(val_root)


@pytest.fixture
def make_config(synth_sets):
    """make_config(*overrides, val=False) -> TrainingConfig of the tiny model on the 48-sample set."""
    train_root, val_root = synth_sets

    def make(*overrides, val: bool = False):
        raw = {
            "model": {"name": "tiny"},
            "data": {"train": [{"kind": "freihand", "root": train_root}], "batch_size": 8},
            "loss": {"mesh": [1.0, 1.0, 1.0, 1.0, 1.0], "keypoint_3d": 1.0, "keypoint_2d": 1.0, "normal": 0.1,
                     "edge": 1.0},
            "optim": {"lr": 1e-3, "schedule": "step", "milestones": [8], "gamma": 0.5, "warmup": 3},
            "train": {"steps": 12, "log_every": 4, "checkpoint_every": 1000, "seed": 0, "progress": False},
        }
        if val:
            raw["data"]["val"] = {"kind": "freihand", "root": val_root, "split": "evaluation"}
        return config_from_dict(raw, list(overrides))

    return make
