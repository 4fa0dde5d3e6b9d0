"""Training engine shared by every model family: configs, trainer, checkpoints, logging, distributed.

* :mod:`handrecon.train.config`: typed config dataclasses from YAML + ``key=value`` overrides.
* :mod:`handrecon.train.trainer`: :class:`Trainer` and :func:`train` (seeding, AMP on CUDA, gradient
  clipping, NaN guard, progress bar, DistributedDataParallel under torchrun).
* :mod:`handrecon.train.data`: sources, the deterministic sharded batch sampler, loaders.
* :mod:`handrecon.train.objective`: the loss terms that apply to a model; validation metrics.
* :mod:`handrecon.train.checkpoint`: atomic, resumable checkpoints (``weights_only=True`` loadable).
* :mod:`handrecon.train.logging`: CSV logs, PNG plots, TensorBoard (optional).

>>> from handrecon.train import load_config, train
>>> cfg = load_config("configs/tiny-synth.yaml", ["train.steps=100", "optim.lr=1e-3"])
>>> summary = train(cfg, "runs/tiny")              # or: handrecon train configs/tiny-synth.yaml --out runs/tiny
"""

from handrecon.train.config import (
    ConfigError,
    TrainingConfig,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
)
from handrecon.train.trainer import Trainer, TrainingError, train

__all__ = [
    "ConfigError",
    "TrainingConfig",
    "TrainingError",
    "Trainer",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "load_config",
    "train",
]
