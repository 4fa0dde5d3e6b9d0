"""Training and validation data: sources from the config, a deterministic sharded batch sampler, loaders.

Determinism: the order of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation(n)``, split
across ranks like ``DistributedSampler`` (padded by wrapping to a multiple of the world size, rank ``r``
takes every ``world``-th index from ``r``). Each batch item is ``(epoch, index)``; :class:`EpochDataset`
passes the epoch to every ``set_epoch`` in the dataset tree (the mix, the augmentation transform) inside
whichever process loads it, so augmentation and mixing depend only on (seed, epoch, index), never on
workers. A resumed run skips the first ``k`` batches of the current epoch with
:meth:`ShardedBatchSampler.set_start`, and sees exactly the batches the interrupted run would have seen.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from handrecon.train.config import ConfigError, DataConfig, SourceConfig

__all__ = ["build_source", "build_train_dataset", "build_val_dataset", "set_epoch_all", "EpochDataset",
           "ShardedBatchSampler", "make_train_loader", "make_val_loader"]


def build_source(src: SourceConfig, key: str) -> Dataset:
    """The reader of one configured source (common-format samples, no transform)."""
    try:
        if src.kind == "synthetic":
            from handrecon.synth import SceneConfig
            from handrecon.synth.dataset import SyntheticHands

            return SyntheticHands(src.length, seed=src.seed, config=SceneConfig(size=src.size, mask=src.mask),
                                  offset=src.offset)
        hand_model = None
        if src.mano:
            from handrecon.hand import load_hand_model

            hand_model = load_hand_model("mano", path=src.mano)
        if src.kind == "freihand":
            from handrecon.data import FreiHAND

            ds = FreiHAND(src.root, src.split or "training", hand_model=hand_model)
        elif src.kind == "rhd":
            from handrecon.data import RHD

            ds = RHD(src.root, src.split or "training")
        else:
            from handrecon.data import HO3D

            ds = HO3D(src.root, src.split or "train", hand_model=hand_model)
    except (OSError, ValueError) as exc:  # missing folders, malformed files (DatasetError is a ValueError)
        raise ConfigError(f"config key '{key}' ({src.kind}): {exc}") from None
    if src.length is not None and src.length < len(ds):
        ds = Subset(ds, range(src.length))
    return ds


def build_train_dataset(data: DataConfig, transform, seed: int) -> Dataset:
    """One source, or a :class:`MixedDataset` of several weighted sources, with ``transform`` applied."""
    from handrecon.data import MixedDataset, TransformedDataset

    sources = [build_source(s, f"data.train.{i}") for i, s in enumerate(data.train)]
    if len(sources) == 1:
        ds = sources[0]
    else:
        ds = MixedDataset(sources, [s.weight for s in data.train], length=data.mix_length, seed=seed)
    return TransformedDataset(ds, transform)


def build_val_dataset(data: DataConfig, transform) -> Dataset | None:
    from handrecon.data import TransformedDataset

    if data.val is None:
        return None
    return TransformedDataset(build_source(data.val, "data.val"), transform)


def set_epoch_all(obj, epoch: int, _seen: set | None = None) -> None:
    """Call ``set_epoch(epoch)`` on ``obj`` and everything it wraps (``dataset``, ``datasets``, ``transform``)."""
    seen = set() if _seen is None else _seen
    if obj is None or id(obj) in seen:
        return
    seen.add(id(obj))
    if callable(getattr(obj, "set_epoch", None)):
        obj.set_epoch(epoch)
    for name in ("dataset", "transform"):
        set_epoch_all(getattr(obj, name, None), epoch, seen)
    for child in getattr(obj, "datasets", None) or ():
        set_epoch_all(child, epoch, seen)


class EpochDataset(Dataset):
    """Indexed by ``(epoch, index)``: sets the epoch on the wrapped dataset tree, then returns item ``index``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._epoch = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        epoch, index = item
        if epoch != self._epoch:
            set_epoch_all(self.dataset, epoch)
            self._epoch = epoch
        return self.dataset[index]


class ShardedBatchSampler:
    """Batches of ``(epoch, index)`` for this rank: a (seed, epoch) permutation, sharded, full batches only.

    Args:
        length: dataset length.
        batch_size: per-process batch size.
        num_replicas, rank: the process group (1, 0 without distributed training).
        seed: order seed.
        shuffle: permute every epoch (False = 0, 1, 2, ...).
    """

    def __init__(self, length: int, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.length, self.batch_size = int(length), int(batch_size)
        self.num_replicas, self.rank, self.seed, self.shuffle = int(num_replicas), int(rank), int(seed), shuffle
        self.per_rank = -(-self.length // self.num_replicas)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_start(self, batch: int) -> None:
        """Skip the first ``batch`` batches of the epoch (resuming in the middle of an epoch)."""
        if not 0 <= batch <= len(self):
            raise ValueError(f"start batch {batch} outside [0, {len(self)}]")
        self.start = int(batch)

    def __len__(self) -> int:
        return self.per_rank // self.batch_size

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's sample order for ``epoch``."""
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.length) if self.shuffle \
            else np.arange(self.length)
        total = self.per_rank * self.num_replicas
        if total > self.length:
            order = np.resize(order, total)  # wrap around, like DistributedSampler's padding
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list]:
        shard = self.indices(self.epoch)
        epoch, B = self.epoch, self.batch_size
        for b in range(self.start, len(self)):
            yield [(epoch, int(i)) for i in shard[b * B:(b + 1) * B]]


def _needs_spawn(data: DataConfig) -> bool:
    sources = list(data.train) + ([data.val] if data.val is not None else [])
    return any(s.kind == "synthetic" for s in sources)


def _loader_kwargs(data: DataConfig, seed: int, pin: bool) -> dict:
    kw = dict(num_workers=data.num_workers, pin_memory=pin,
              generator=torch.Generator().manual_seed(int(seed)))  # never draws from the global torch RNG
    if data.num_workers > 0:
        kw["persistent_workers"] = True
        if _needs_spawn(data):  # the on-the-fly renderer does not survive fork (handrecon.synth.dataset)
            kw["multiprocessing_context"] = "spawn"
    return kw


def make_train_loader(dataset: Dataset, sampler: ShardedBatchSampler, data: DataConfig, seed: int,
                      pin: bool = False) -> DataLoader:
    return DataLoader(EpochDataset(dataset), batch_sampler=sampler, **_loader_kwargs(data, seed, pin))


def make_val_loader(dataset: Dataset, data: DataConfig, seed: int, pin: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=data.val_batch_size or data.batch_size, shuffle=False, drop_last=False,
                      **_loader_kwargs(data, seed, pin))
