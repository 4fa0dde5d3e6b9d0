"""Training configs: YAML loading, ``extends`` chains, dotted overrides, key-naming errors; the LR schedule; the
sampler; the CLI's help, ``--print-config`` and config-error exit code."""

from pathlib import Path

import numpy as np
import pytest

from handrecon.cli import main
from handrecon.train import ConfigError, config_from_dict, config_to_dict, load_config
from handrecon.train.config import TrainingConfig, config_differences, merge_config_dicts
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


def test_merge_config_dicts_merges_mappings_and_replaces_lists_and_values():
    base = {"model": {"name": "tiny", "overrides": {"a": 1, "b": 2}}, "data": {"train": [{"seed": 1}, {"seed": 2}]},
            "loss": {"mesh": [1.0, 1.0]}}
    update = {"model": {"overrides": {"b": 3}}, "data": {"train": [{"seed": 5}]}, "loss": {"mesh": [2.0]},
              "train": {"steps": 4}}
    merged = merge_config_dicts(base, update)
    assert merged == {"model": {"name": "tiny", "overrides": {"a": 1, "b": 3}}, "data": {"train": [{"seed": 5}]},
                      "loss": {"mesh": [2.0]}, "train": {"steps": 4}}
    # neither input is changed, and the result shares no mutable part with them
    assert base["model"]["overrides"] == {"a": 1, "b": 2} and len(base["data"]["train"]) == 2
    merged["data"]["train"][0]["seed"] = 9
    assert update["data"]["train"][0]["seed"] == 5
    # a mapping replaces a plain value and a plain value replaces a mapping
    assert merge_config_dicts({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert merge_config_dicts({"a": {"b": 2}}, {"a": None}) == {"a": None}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_chain_resolves_relative_to_each_file_and_overrides_apply_last(tmp_path):
    _write(tmp_path / "base" / "root.yaml", "model: {name: tiny}\n"
           "data: {train: [{kind: synthetic, length: 100, seed: 1}], batch_size: 8}\n"
           "optim: {lr: 1.0e-3, warmup: 5}\ntrain: {steps: 10}\n")
    # the middle file sits beside root.yaml and is named relative to itself
    _write(tmp_path / "base" / "mid.yaml", "extends: root.yaml\noptim: {lr: 5.0e-4}\ntrain: {steps: 20}\n")
    leaf = _write(tmp_path / "runs" / "leaf.yaml", "extends: ../base/mid.yaml\n"
                  "data: {train: [{kind: synthetic, length: 50, seed: 9}]}\n")
    cfg = load_config(leaf, ["train.steps=30"])
    assert cfg.model.name == "tiny" and cfg.data.batch_size == 8           # from root.yaml
    assert cfg.optim.lr == 5e-4 and cfg.optim.warmup == 5                   # mid.yaml over root.yaml, merged
    assert [(s.length, s.seed) for s in cfg.data.train] == [(50, 9)]        # the list replaced whole
    assert cfg.train.steps == 30                                            # the override over the chain
    # the chain resolves to what one file with the same keys gives
    flat = _write(tmp_path / "flat.yaml", "model: {name: tiny}\n"
                  "data: {train: [{kind: synthetic, length: 50, seed: 9}], batch_size: 8}\n"
                  "optim: {lr: 5.0e-4, warmup: 5}\ntrain: {steps: 30}\n")
    assert config_to_dict(cfg) == config_to_dict(load_config(flat))


def test_extends_errors_name_the_file(tmp_path):
    missing = _write(tmp_path / "a.yaml", "extends: nowhere.yaml\ntrain: {steps: 1}\n")
    with pytest.raises(ConfigError, match=r"nowhere.yaml.*the 'extends' of .*a.yaml"):
        load_config(missing)
    _write(tmp_path / "x.yaml", "extends: y.yaml\n")
    _write(tmp_path / "y.yaml", "extends: x.yaml\n")
    with pytest.raises(ConfigError, match=r"extends makes a loop: .*x.yaml -> .*y.yaml -> .*x.yaml"):
        load_config(tmp_path / "x.yaml")
    _write(tmp_path / "self.yaml", "extends: self.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config(tmp_path / "self.yaml")
    _write(tmp_path / "num.yaml", "extends: 3\n")
    with pytest.raises(ConfigError, match=r"num.yaml: extends must be the path of another YAML config"):
        load_config(tmp_path / "num.yaml")
    _write(tmp_path / "list.yaml", "- 1\n- 2\n")
    _write(tmp_path / "on-list.yaml", "extends: list.yaml\n")
    with pytest.raises(ConfigError, match=r"list.yaml: a config must be a mapping"):
        load_config(tmp_path / "on-list.yaml")
    # a key error in the merged config still names the file that was loaded
    _write(tmp_path / "ok.yaml", "data: {train: [{kind: synthetic, length: 10}]}\ntrain: {steps: 1}\n")
    _write(tmp_path / "typo.yaml", "extends: ok.yaml\noptim: {lrr: 1}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml.*optim.lrr"):
        load_config(tmp_path / "typo.yaml")
    # a dict has no file to resolve 'extends' against
    with pytest.raises(ConfigError, match="only load_config"):
        config_from_dict({**MINIMAL, "extends": "ok.yaml"})


def test_later_default_model_stages_state_only_their_start_and_their_hands():
    """Stages 10 on continue the previous stage's recipe: resolved, each differs from the one before only in
    the weights it starts from and the seed of its training hands (and, where a session had less time, the
    length of its one cosine cycle)."""
    stages = sorted(int(p.stem.rsplit("stage", 1)[1]) for p in CONFIGS.glob("mobrecon-ghost-sil-synth-stage*.yaml"))
    assert stages[:2] == [2, 3] and stages[-1] >= 12
    for n in (s for s in stages if s >= 10):
        prev = config_to_dict(load_config(CONFIGS / f"mobrecon-ghost-sil-synth-stage{n - 1}.yaml"))
        this = config_to_dict(load_config(CONFIGS / f"mobrecon-ghost-sil-synth-stage{n}.yaml"))
        changed = [d[0] for d in config_differences(prev, this, ignore=["train.steps"])]
        assert changed == ["data.train.0.seed", "model.init"], n
        assert this["train"]["steps"] in (6000, 8000) and this["optim"]["schedule"] == "cosine", n
        assert this["model"]["init"] == f"runs/mobrecon-ghost-sil-s{n - 1}/model.safetensors"
        assert this["data"]["train"][0]["seed"] == n + 1


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


def test_cli_print_config_shows_the_resolved_recipe_and_out_is_needed_to_train(tmp_path, capsys):
    import yaml

    config = CONFIGS / "mobrecon-ghost-sil-synth-stage12.yaml"
    assert main(["train", str(config), "train.steps=7", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = config_to_dict(load_config(config, ["train.steps=7"]))
    assert printed == expected and printed["train"]["steps"] == 7
    assert "extends" not in printed and printed["model"]["name"] == "mobrecon-ghost-sil"   # from the base files
    # the printed YAML is itself a complete config: it loads back to the same recipe
    path = _write(tmp_path / "resolved.yaml", yaml.safe_dump(printed))
    assert config_to_dict(load_config(path)) == expected
    assert main(["train", str(CONFIGS / "tiny-synth.yaml")]) == 2
    err = capsys.readouterr().err
    assert "--out is required" in err and "--print-config" in err


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
