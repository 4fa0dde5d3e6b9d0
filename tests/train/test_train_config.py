"""Training configs: YAML loading, dotted overrides, key-naming errors; the LR schedule; the sampler; the CLI's
help and config-error exit code."""

from pathlib import Path

import numpy as np
import pytest

from handrecon.cli import main
from handrecon.train import ConfigError, config_from_dict, config_to_dict, load_config
from handrecon.train.config import TrainingConfig, config_differences
from handrecon.train.data import ShardedBatchSampler
from handrecon.train.trainer import lr_factor

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MINIMAL = {"data": {"train": [{"kind": "synthetic", "length": 100}]}, "train": {"steps": 10}}


def test_shipped_tiny_synth_config_loads_with_typed_values():
    cfg = load_config(CONFIGS / "tiny-synth.yaml")
    assert isinstance(cfg, TrainingConfig)
    assert cfg.model.name == "tiny" and cfg.data.input_size == 64
    assert cfg.data.train[0].kind == "synthetic" and cfg.data.val.seed != cfg.data.train[0].seed
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1e-3
    assert cfg.train.steps >= 100


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_loads_and_names_a_buildable_model(name):
    """Each recipe in configs/ parses, its model config (preset + overrides) is valid, and its milestones fall
    inside the run."""
    from handrecon.models import build_model

    cfg = load_config(CONFIGS / name)
    model = build_model(cfg.model.name, **cfg.model.overrides)
    assert cfg.data.input_size in (None, model.input_size)
    assert all(0 < m < cfg.train.steps for m in cfg.optim.milestones)


def test_overrides_set_nested_keys_list_items_and_append():
    cfg = config_from_dict(MINIMAL, [
        "optim.lr=1e-3",              # YAML 1.1 reads this as a string; the schema makes it a float
        "data.train.0.weight=2",
        "data.train.1.kind=freihand", "data.train.1.root=/data/freihand",   # index 1 appends a source
        "loss.mesh=[1, 0.5]",
        "loss.normal=0.1",
        "model.overrides.channels=[8, 16]",
        "data.val.kind=synthetic", "data.val.length=8",
        "train.deterministic=true",
    ])
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.data.train[0].weight == 2.0 and cfg.data.train[1].root == "/data/freihand"
    assert cfg.loss.mesh == [1.0, 0.5] and cfg.loss.normal == 0.1
    assert cfg.model.overrides == {"channels": [8, 16]}
    assert cfg.data.val.length == 8 and cfg.train.deterministic is True
    assert config_from_dict(MINIMAL, ["loss.mesh=2"]).loss.mesh == [2.0]      # one number = level 0
    assert config_from_dict(MINIMAL, ["data.val=null"]).data.val is None
    # a config survives a round trip through a plain dict
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize("overrides, key, words", [
    (["optim.lrr=1"], "optim.lrr", ["unknown", "lr"]),
    (["data.train.0.rooot=x"], "data.train.0.rooot", ["unknown", "root"]),
    (["colour=red"], "colour", ["unknown", "model", "data"]),
    (["train.steps=abc"], "train.steps", ["integer"]),
    (["train.steps=2.5"], "train.steps", ["integer"]),
    (["train.deterministic=maybe"], "train.deterministic", ["true/false"]),
    (["optim.name=sgd"], "optim.name", ["adam", "adamw"]),
    (["optim.lr=-1"], "optim.lr", ["positive"]),
    (["train.epochs=2"], "train.steps", ["exactly one"]),
    (["loss.consistency_2d=1"], "loss.consistency_2d", ["two_view"]),
    (["data.train.0.length=null"], "data.train.0.length", ["synthetic"]),
    (["data.train.0.kind=freihand"], "data.train.0.root", ["root"]),
    (["data.train.0.kind=mnist"], "data.train.0.kind", ["freihand", "synthetic"]),
    (["data.train.0.mask=amodal"], "data.train.0.mask", ["visible", "full"]),
    (["data.train.3.weight=1"], "data.train", ["past the end"]),
    (["data.augmentation.rotatoin=10"], "data.augmentation.rotatoin", ["unknown"]),
    (["loss.mesh=[0]"], "loss", ["nothing to train"]),
    (["optim.lr"], "optim.lr", ["KEY=VALUE"]),
])
def test_config_errors_name_the_key(overrides, key, words):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(MINIMAL, overrides)
    message = str(exc.value)
    assert key in message, message
    for word in words:
        assert word in message, message


def test_synthetic_source_passes_its_mask_kind_to_the_scene():
    from handrecon.train.data import build_source

    cfg = config_from_dict(MINIMAL, ["data.train.0.mask=full"])
    assert build_source(cfg.data.train[0], "data.train.0").config.mask == "full"
    assert build_source(config_from_dict(MINIMAL).data.train[0], "data.train.0").config.mask == "visible"


def test_yaml_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  train: [{kind: synthetic, length: 10}]\n  batch_sise: 4\ntrain: {steps: 1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*data.batch_sise"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_config_differences_ignore_listed_keys():
    a = config_to_dict(config_from_dict(MINIMAL))
    b = config_to_dict(config_from_dict(MINIMAL, ["train.steps=20", "optim.lr=0.5", "data.train.0.seed=3"]))
    diffs = config_differences(a, b, ignore=["train.steps"])
    assert [d[0] for d in diffs] == ["data.train.0.seed", "optim.lr"]


def test_lr_schedule_warmup_steps_and_cosine():
    cfg = config_from_dict(MINIMAL, ["optim.warmup=4", "optim.milestones=[10, 20]", "optim.gamma=0.1"]).optim
    assert [lr_factor(s, cfg, 30, 5) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(9, cfg, 30, 5) == 1.0 and lr_factor(10, cfg, 30, 5) == pytest.approx(0.1)
    assert lr_factor(25, cfg, 30, 5) == pytest.approx(0.01)
    epochs = config_from_dict(MINIMAL, ["optim.milestones=[2]", "optim.milestone_unit=epoch"]).optim
    assert lr_factor(9, epochs, 30, 5) == 1.0 and lr_factor(10, epochs, 30, 5) == pytest.approx(0.1)
    cos = config_from_dict(MINIMAL, ["optim.schedule=cosine", "optim.min_lr=1e-5"]).optim
    assert lr_factor(0, cos, 30, 5) == 1.0 and lr_factor(29, cos, 30, 5) == pytest.approx(1e-2)


def test_sampler_is_deterministic_sharded_and_resumable():
    def batches(sampler, epoch, start=0):
        sampler.set_epoch(epoch)
        sampler.set_start(start)
        return list(sampler)

    one = ShardedBatchSampler(50, 4, seed=3)
    assert len(one) == 12
    assert batches(one, 0) == batches(ShardedBatchSampler(50, 4, seed=3), 0)
    assert batches(one, 0) != batches(one, 1)
    assert all(e == 1 for b in batches(one, 1) for e, _ in b)
    assert batches(one, 1, start=5) == batches(one, 1)[5:]
    ranks = [ShardedBatchSampler(50, 4, num_replicas=2, rank=r, seed=3) for r in range(2)]
    shards = [np.concatenate([[i for _, i in b] for b in batches(s, 2)]) for s in ranks]
    assert len(ranks[0]) == 6 and not set(shards[0]) & set(shards[1])
    full = [r.indices(2) for r in ranks]
    assert sorted(np.concatenate(full).tolist()) == sorted(list(range(50)))   # 25 + 25: a partition


def test_cli_train_help_and_config_error_exit_code(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out
    assert main(["train", str(CONFIGS / "tiny-synth.yaml"), "optim.lrr=1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "error" in err
    # overrides may also follow the options
    assert main(["train", str(CONFIGS / "tiny-synth.yaml"), "--out", str(tmp_path / "run"), "train.steps=1",
                 "data.batch_size=0"]) == 2
    assert "data.batch_size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_aggregation_ablation_rows_are_valid_overrides_of_its_config():
    """scripts/aggregation_ablation.py trains its config once per Table 3 row and seed: the overrides it passes
    must load and build a model that aggregates as the row says (a row with groups adds group maps)."""
    import importlib.util

    from handrecon.models import build_model

    path = CONFIGS.parent / "scripts" / "aggregation_ablation.py"
    spec = importlib.util.spec_from_file_location("aggregation_ablation", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.CONFIG.exists()
    seen = set()
    for setting, (aggregation, groups) in script.SETTINGS.items():
        for seed in script.SEEDS:
            cfg = load_config(script.CONFIG, script.overrides(setting, seed))
            model = build_model(cfg.model.name, **cfg.model.overrides)
            assert model.config.aggregation == aggregation and cfg.train.seed == seed
            if aggregation == "group":
                assert model.config.groups == tuple(groups) and model.aggregate.num_groups > 0
        seen.add((aggregation, tuple(groups) if aggregation == "group" else ()))
    # Table 3's six settings: heatmaps alone, part, level, tip, part + tip, all three
    assert len(seen) == 6
