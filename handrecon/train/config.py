"""Training configuration: typed dataclasses read from YAML, with dotted ``key=value`` overrides.

A config file has five sections (every key is optional except ``data.train``)::

    model:                        # a preset of handrecon.models.list_models() + fields of its config
      name: tiny
      overrides: {channels: [16, 32, 64, 64]}
    data:
      train:                      # one or more sources; several are mixed by weight (MixedDataset)
        - {kind: synthetic, length: 100000, seed: 0, size: 128, weight: 1.0}
        - {kind: freihand, root: data/freihand, split: training, weight: 1.0}
      val: {kind: synthetic, length: 256, seed: 1, size: 128}    # optional
      input_size: 64              # None = the model config's input_size
      batch_size: 32              # PER PROCESS: under torchrun the global batch is batch_size x WORLD_SIZE
      num_workers: 2
    loss: {mesh: [1.0, 1.0], keypoint_2d: 1.0, normal: 0.1, edge: 1.0}
    optim: {name: adam, lr: 1.0e-3, schedule: step, milestones: [200], gamma: 0.1, warmup: 10}
    train: {steps: 300, log_every: 10, val_every: 100, checkpoint_every: 100, seed: 0}

Overrides address keys by dotted paths, list items by index (``data.train.0.weight=2``; the index one past
the end appends a new item); the value is parsed as YAML (``optim.lr=1e-3``, ``loss.mesh=[1,1,1]``,
``data.val=null``). Unknown keys, wrong types and invalid values raise :class:`ConfigError` naming the key.

A file may start from another with ``extends: OTHER.yaml`` (a path relative to the file): the other file is
read first (it may extend a third) and this file's keys are laid over it, mappings merged key by key, lists
and values replaced whole. A recipe that continues an earlier one then states only what changes::

    extends: mobrecon-ghost-sil-synth-stage9.yaml
    model: {init: runs/mobrecon-ghost-sil-s9/model.safetensors}
    data:
      train: [{kind: synthetic, length: 1000000, seed: 11, size: 256, mask: full}]
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = [
    "ConfigError",
    "SOURCE_KINDS",
    "LOSS_TERMS",
    "ModelConfig",
    "SourceConfig",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainingConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "apply_overrides",
    "merge_config_dicts",
    "config_differences",
]


class ConfigError(ValueError):
    """A configuration error; the message names the offending key."""


SOURCE_KINDS = ("freihand", "synthetic", "rhd", "ho3d")
#: Loss terms in the order they are logged.
LOSS_TERMS = ("mesh", "keypoint_3d", "keypoint_2d", "heatmap", "silhouette", "normal", "edge",
              "consistency_2d", "consistency_3d", "rotation", "canonical_mesh")


def _choices(*values, default):
    return field(default=default, metadata={"choices": values})


@dataclass
class ModelConfig:
    """name: a model preset (``handrecon models``); overrides: fields of that preset's config; init: weights
    to start from (``PATH.safetensors`` written by ``save_model``, e.g. ``runs/x/model.safetensors``), for
    fine-tuning or continuing a finished run with a new schedule; init_partial: let ``init`` lack some of the
    model's tensors (a head added since those weights were trained), which keep their fresh initialisation and
    are listed in a notice (tensors of the wrong shape, or that the model lacks, still stop the run)."""

    name: str = "tiny"
    overrides: dict = field(default_factory=dict)
    init: str | None = None
    init_partial: bool = False


@dataclass
class SourceConfig:
    """One dataset.

    kind: ``freihand`` (FreiHAND layout on disk: real FreiHAND or a set written by ``handrecon synth``),
        ``synthetic`` (rendered on the fly), ``rhd``, ``ho3d``.
    root: dataset folder (disk kinds).
    split: default ``training`` (``train`` for HO3D); ``evaluation`` for a validation split.
    weight: share of this source in a mix of several training sources.
    length: synthetic: number of samples (required); disk kinds: use only the first ``length`` samples.
    seed, size, offset: synthetic: stream seed, rendered image side, first index of the stream.
    mask: synthetic: ``visible`` (default) or ``full`` (the hand also behind occluders; see
        :attr:`handrecon.synth.SceneConfig.mask`).
    mano: path to MANO_RIGHT.pkl to pose FreiHAND's/HO3D's MANO labels into meshes (optional).
    """

    kind: str = _choices(*SOURCE_KINDS, default="synthetic")
    root: str | None = None
    split: str | None = None
    weight: float = 1.0
    length: int | None = None
    seed: int = 0
    size: int = 224
    offset: int = 0
    mask: str = _choices("visible", "full", default="visible")
    mano: str | None = None


@dataclass
class DataConfig:
    """Data sources, batching and training targets.

    batch_size is per process: under ``torchrun --nproc_per_node=N`` one step sees N x batch_size images.
    heatmap_size / silhouette_size: None = the model's output size (targets are made only when the loss uses
    them). mix_length: items per epoch of a mix of several sources (None = their total length).
    augmentation: fields of :class:`handrecon.data.Augmentation` (scale, rotation, brightness, ...).
    """

    train: list[SourceConfig] = field(default_factory=list)
    val: SourceConfig | None = None
    input_size: int | None = None
    batch_size: int = 32
    val_batch_size: int | None = None
    num_workers: int = 0
    shuffle: bool = True
    mix_length: int | None = None
    heatmap_size: int | None = None
    heatmap_sigma: float = 2.0
    silhouette_size: int | None = None
    two_view: bool = False
    augmentation: dict = field(default_factory=dict)


@dataclass
class LossConfig:
    """Weight of each loss term; a term is computed only when its weight is > 0 and the model outputs what
    it needs. ``mesh`` holds one weight per mesh level (level 0 = the full 778-vertex mesh, then
    ``vertices_l1``...); a single number means level 0 only."""

    mesh: list[float] = field(default_factory=lambda: [1.0])
    keypoint_3d: float = 0.0
    keypoint_2d: float = 0.0
    heatmap: float = 0.0
    silhouette: float = 0.0
    normal: float = 0.0
    edge: float = 0.0
    consistency_2d: float = 0.0
    consistency_3d: float = 0.0
    rotation: float = 0.0
    canonical_mesh: float = 0.0


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    schedule: ``constant``, ``step`` (multiply by ``gamma`` at each milestone) or ``cosine`` (to ``min_lr``
    at the last step). milestones count steps, or epochs with ``milestone_unit: epoch``. warmup: steps of
    linear warm-up. grad_clip: max global gradient norm (0 = off). amp: float16 autocast + GradScaler, used
    on CUDA only (ignored on CPU).
    """

    name: str = _choices("adam", "adamw", default="adam")
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = _choices("constant", "step", "cosine", default="step")
    milestones: list[int] = field(default_factory=list)
    milestone_unit: str = _choices("step", "epoch", default="step")
    gamma: float = 0.1
    warmup: int = 0
    min_lr: float = 0.0
    grad_clip: float = 0.0
    amp: bool = False


@dataclass
class TrainConfig:
    """Length of the run and its bookkeeping. Exactly one of ``steps`` / ``epochs``. ``*_every`` count steps
    (0 = never; a checkpoint and the final model are always written at the end). device: auto = CUDA when
    available. deterministic: deterministic algorithms (slower on GPU). find_unused_parameters: for
    DistributedDataParallel; None = when some model output feeds no loss term. threads: CPU threads of the
    training process (None = torch's default; 1 keeps a CPU run fast when other processes compete).
    channels_last: keep the weights and input images in NHWC memory layout, which the CPU (oneDNN) and GPU
    convolution kernels run faster; the results are the same up to float rounding."""

    steps: int | None = None
    epochs: int | None = None
    log_every: int = 20
    val_every: int = 0
    checkpoint_every: int = 1000
    seed: int = 0
    deterministic: bool = False
    device: str = _choices("auto", "cpu", "cuda", default="auto")
    progress: bool = True
    tensorboard: bool = True
    find_unused_parameters: bool | None = None
    threads: int | None = None
    channels_last: bool = False


@dataclass
class TrainingConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "TrainingConfig":
        _validate(self)
        return self


# ----------------------------------------------------------------------------------------------------------
# typed conversion
# ----------------------------------------------------------------------------------------------------------
def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {_describe(args[0])}s" if args else "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _show(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _convert(value, tp, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _convert(value, option, key)
            except ConfigError:
                if len(options) == 1:
                    raise
        raise ConfigError(f"config key '{key}': expected {_describe(tp)}, got {_show(value)}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is list:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and args and args[0] is float:
            value = [value]  # a single number where a list of weights is expected
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected {_describe(tp)}, got {_show(value)}")
        return [_convert(v, args[0], f"{key}.{i}") for i, v in enumerate(value)] if args else list(value)
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {_show(value)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _number(value)
        if number is not None and math.isfinite(number) and float(number).is_integer():
            return int(number)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = _number(value)
        if number is not None:
            return float(number)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a type the schema does not use
        raise ConfigError(f"config key '{key}': unsupported type {tp}")
    raise ConfigError(f"config key '{key}': expected {_describe(tp)}, got {_show(value)}")


def _number(value):
    """A float from a string such as ``1e-3`` (YAML 1.1 reads that as a string), else None."""
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _build(cls, raw, prefix: str):
    name = prefix or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{name}': expected a mapping of keys, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            full = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown config key '{full}'; known keys{' of ' + repr(prefix) if prefix else ''}: "
                              f"{', '.join(fields)}")
    kwargs = {}
    for key, f in fields.items():
        if key not in raw:
            continue
        full = f"{prefix}.{key}" if prefix else key
        value = _convert(raw[key], hints[key], full)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"config key '{full}': must be one of {', '.join(choices)}; got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------------------
# cross-field checks
# ----------------------------------------------------------------------------------------------------------
def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")


def _validate_source(src: SourceConfig, key: str) -> None:
    if src.kind == "synthetic":
        _check(src.length is not None, f"{key}.length", "a synthetic source needs 'length' (number of samples)")
        _check(src.size >= 16, f"{key}.size", f"must be at least 16 pixels, got {src.size}")
        _check(src.offset >= 0, f"{key}.offset", f"must be >= 0, got {src.offset}")
    else:
        _check(bool(src.root), f"{key}.root", f"a {src.kind} source needs 'root' (the dataset folder)")
    if src.length is not None:
        _check(src.length >= 1, f"{key}.length", f"must be positive, got {src.length}")
    if src.split is not None:
        allowed = ("train", "evaluation") if src.kind == "ho3d" else ("training", "evaluation")
        _check(src.split in allowed, f"{key}.split", f"must be one of {', '.join(allowed)} for {src.kind}; "
                                                     f"got {src.split!r}")
    _check(math.isfinite(src.weight) and src.weight >= 0, f"{key}.weight",
           f"must be a non-negative number, got {src.weight}")


def _validate(cfg: TrainingConfig) -> None:
    d, loss, o, t = cfg.data, cfg.loss, cfg.optim, cfg.train
    _check(bool(cfg.model.name), "model.name", "name a model preset (see 'handrecon models')")
    _check(len(d.train) > 0, "data.train", "list at least one training source, e.g. "
                                           "[{kind: synthetic, length: 100000, size: 128}]")
    for i, src in enumerate(d.train):
        _validate_source(src, f"data.train.{i}")
    if len(d.train) > 1:
        _check(sum(s.weight for s in d.train) > 0, "data.train", "the source weights must not all be 0")
    if d.val is not None:
        _validate_source(d.val, "data.val")
    if d.input_size is not None:
        _check(d.input_size >= 8, "data.input_size", f"must be at least 8, got {d.input_size}")
    _check(d.batch_size >= 1, "data.batch_size", f"must be positive, got {d.batch_size}")
    if d.val_batch_size is not None:
        _check(d.val_batch_size >= 1, "data.val_batch_size", f"must be positive, got {d.val_batch_size}")
    _check(d.num_workers >= 0, "data.num_workers", f"must be >= 0, got {d.num_workers}")
    if d.mix_length is not None:
        _check(d.mix_length >= 1, "data.mix_length", f"must be positive, got {d.mix_length}")
    for key in ("heatmap_size", "silhouette_size"):
        v = getattr(d, key)
        _check(v is None or v >= 1, f"data.{key}", f"must be positive or null (= the model's), got {v}")
    _check(d.heatmap_sigma > 0, "data.heatmap_sigma", f"must be positive, got {d.heatmap_sigma}")
    from handrecon.data import Augmentation

    known = {f.name for f in dataclasses.fields(Augmentation)} - {"output_size"}
    for key in d.augmentation:
        _check(key in known, f"data.augmentation.{key}", f"unknown augmentation setting; known: {', '.join(sorted(known))}")
    try:
        Augmentation(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.augmentation.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key 'data.augmentation': {exc}") from None

    _check(0 < len(loss.mesh) <= 5, "loss.mesh", f"one weight per mesh level (1 to 5 levels), got {loss.mesh}")
    for i, w in enumerate(loss.mesh):
        _check(math.isfinite(w) and w >= 0, f"loss.mesh.{i}", f"must be a non-negative number, got {w}")
    for term in LOSS_TERMS[1:]:
        w = getattr(loss, term)
        _check(math.isfinite(w) and w >= 0, f"loss.{term}", f"must be a non-negative number, got {w}")
    _check(any(w > 0 for w in loss.mesh) or any(getattr(loss, t_) > 0 for t_ in LOSS_TERMS[1:]), "loss",
           "every loss weight is 0; nothing to train")
    for term in ("consistency_2d", "consistency_3d"):
        _check(getattr(loss, term) == 0 or d.two_view, f"loss.{term}",
               "a consistency loss needs two augmented views per sample: set data.two_view: true")

    _check(math.isfinite(o.lr) and o.lr > 0, "optim.lr", f"must be a positive number, got {o.lr}")
    _check(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas",
           f"must be two numbers in [0, 1), got {o.betas}")
    _check(list(o.milestones) == sorted(o.milestones) and all(m > 0 for m in o.milestones), "optim.milestones",
           f"must be increasing positive numbers, got {o.milestones}")
    _check(o.gamma > 0, "optim.gamma", f"must be positive, got {o.gamma}")
    _check(o.warmup >= 0, "optim.warmup", f"must be >= 0, got {o.warmup}")
    _check(cfg.train.threads is None or int(cfg.train.threads) >= 1, "train.threads",
           f"must be >= 1, got {cfg.train.threads}")
    _check(0 <= o.min_lr <= o.lr, "optim.min_lr", f"must be in [0, optim.lr], got {o.min_lr}")
    _check(o.grad_clip >= 0, "optim.grad_clip", f"must be >= 0 (0 = off), got {o.grad_clip}")

    _check((t.steps is None) != (t.epochs is None), "train.steps",
           "give exactly one of train.steps and train.epochs" + (" (both are set)" if t.steps is not None else ""))
    if t.steps is not None:
        _check(t.steps >= 1, "train.steps", f"must be positive, got {t.steps}")
    if t.epochs is not None:
        _check(t.epochs >= 1, "train.epochs", f"must be positive, got {t.epochs}")
    for key in ("log_every", "val_every", "checkpoint_every"):
        _check(getattr(t, key) >= 0, f"train.{key}", f"must be >= 0 (0 = never), got {getattr(t, key)}")


# ----------------------------------------------------------------------------------------------------------
# YAML, overrides, dicts
# ----------------------------------------------------------------------------------------------------------
def _parse_value(text: str):
    text = text.strip()
    if text == "":
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key=value`` overrides (dotted keys, list indices) to a raw config dict in place."""
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"override {text!r} must look like KEY=VALUE, e.g. optim.lr=1e-3")
        key, value = text.split("=", 1)
        parts = [p for p in key.strip().split(".")]
        if not parts or any(not p for p in parts):
            raise ConfigError(f"override {text!r}: empty key part in {key!r}")
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[:i + 1])
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                if not part.isdigit():
                    raise ConfigError(f"override {text!r}: '{'.'.join(parts[:i])}' is a list; index it by "
                                      f"number, not {part!r}")
                idx = int(part)
                if idx > len(node):
                    raise ConfigError(f"override {text!r}: index {idx} is past the end of '{'.'.join(parts[:i])}' "
                                      f"({len(node)} items; index {len(node)} appends one)")
                if last:
                    value_parsed = _parse_value(value)
                    if idx == len(node):
                        node.append(value_parsed)
                    else:
                        node[idx] = value_parsed
                else:
                    if idx == len(node):
                        node.append([] if nxt_is_index else {})
                    elif node[idx] is None:
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = _parse_value(value)
                else:
                    if node.get(part) is None:
                        node[part] = [] if nxt_is_index else {}
                    node = node[part]
            else:
                raise ConfigError(f"override {text!r}: '{'.'.join(parts[:i])}' holds {_show(node)}, not a mapping "
                                  f"or list, so '{where}' cannot be set")
    return raw


def merge_config_dicts(base: dict, update: dict) -> dict:
    """``update`` laid over ``base`` (neither is changed): mappings merge key by key, recursively; lists and
    values in ``update`` replace those in ``base`` whole (a list of sources is one value, not merged by index)."""
    import copy

    def lay(into: dict, over: dict) -> None:   # into is already a private copy: merge in place
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                lay(into[key], value)
            else:
                into[key] = copy.deepcopy(value)

    out = copy.deepcopy(base)
    lay(out, update)
    return out


def _require_sections_mapping(raw, where: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}a config must be a mapping of sections (model, data, loss, optim, train), "
                          f"got {_show(raw)}")


def config_from_dict(raw: dict | None, overrides: Sequence[str] = ()) -> TrainingConfig:
    """A validated :class:`TrainingConfig` from a raw (YAML-like) dict and ``key=value`` overrides."""
    import copy

    raw = copy.deepcopy(raw) if raw is not None else {}
    _require_sections_mapping(raw, "")
    if "extends" in raw:
        raise ConfigError("'extends' names a file relative to the config file, so only load_config(PATH) reads "
                          "it; merge the dicts with merge_config_dicts() before config_from_dict()")
    apply_overrides(raw, overrides)
    return _build(TrainingConfig, raw, "").validate()


def _read_config_file(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The raw dict of a YAML config file with its ``extends`` chain resolved (``chain``: the files that
    extend this one, to catch a loop)."""
    if not path.is_file():
        where = f" (the 'extends' of '{chain[-1]}')" if chain else ""
        raise ConfigError(f"config file not found: '{path}'{where}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if raw is None:
        raw = {}
    _require_sections_mapping(raw, f"{path}: ")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: extends must be the path of another YAML config, relative to this file, "
                          f"got {_show(base)}")
    base_path = path.parent / base
    seen = [p.resolve() for p in (*chain, path)]
    if base_path.resolve() in seen:
        loop = " -> ".join(str(p) for p in (*chain, path, base_path))
        raise ConfigError(f"{path}: extends makes a loop: {loop}")
    return merge_config_dicts(_read_config_file(base_path, (*chain, path)), raw)


def load_config(path, overrides: Sequence[str] = ()) -> TrainingConfig:
    """Read a YAML config file (and the files it ``extends``), apply ``key=value`` overrides, validate.
    Raises :class:`ConfigError`."""
    path = Path(path)
    raw = _read_config_file(path)
    try:
        return config_from_dict(raw, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_to_dict(config: TrainingConfig) -> dict:
    """Plain nested dict (JSON/YAML-able) of a config."""
    return dataclasses.asdict(config)


def config_to_yaml(config: TrainingConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)


def _flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: obj}


def config_differences(a: dict, b: dict, ignore: Sequence[str] = ()) -> list[tuple[str, Any, Any]]:
    """[(dotted key, value in a, value in b)] where two config dicts differ, keys under ``ignore`` skipped."""
    fa, fb = _flatten(a), _flatten(b)
    out = []
    for key in sorted(set(fa) | set(fb)):
        if any(key == p or key.startswith(p + ".") for p in ignore):
            continue
        if fa.get(key, "<absent>") != fb.get(key, "<absent>"):
            out.append((key, fa.get(key, "<absent>"), fb.get(key, "<absent>")))
    return out
