"""Dataset combinators: a weighted mix of datasets and a dataset with a per-sample transform."""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

__all__ = ["MixedDataset", "TransformedDataset"]


class MixedDataset(Dataset):
    """A weighted mix of datasets (MobRecon pre-trains and fine-tunes on mixes of real and synthetic data).

    Item ``i`` draws from its own generator ``numpy.random.default_rng([seed, epoch, i])``: first a dataset
    with probability proportional to ``weights``, then a uniformly random item of it. The mapping is
    deterministic in (seed, epoch, i), independent of workers and order; :meth:`set_epoch` gives another
    draw for the next epoch.

    Args:
        datasets: map-style datasets (non-empty).
        weights: one non-negative weight per dataset (not all zero); None = proportional to their lengths.
        length: number of items of the mix; None = the total length of the datasets.
        seed: the mix's seed.
    """

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float] | None = None,
                 length: int | None = None, seed: int = 0):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("MixedDataset needs at least one dataset")
        sizes = [len(d) for d in self.datasets]
        if any(s == 0 for s in sizes):
            raise ValueError(f"every dataset must be non-empty, got lengths {sizes}")
        w = np.asarray(sizes if weights is None else weights, dtype=np.float64)
        if w.shape != (len(self.datasets),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {len(self.datasets)} non-negative numbers, not all zero; got {weights}")
        self.weights = w / w.sum()
        self._cumulative = np.cumsum(self.weights)
        self.length = int(sum(sizes) if length is None else length)
        if self.length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int]:
        """Mix index -> (dataset number, item index in that dataset)."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        index = int(index) % self.length
        rng = np.random.default_rng([self.seed, self.epoch, index])
        which = int(min(np.searchsorted(self._cumulative, rng.random(), side="right"), len(self.datasets) - 1))
        while self.weights[which] == 0:  # only reachable through rounding at the top end
            which -= 1
        return which, int(rng.integers(len(self.datasets[which])))

    def __getitem__(self, index: int):
        which, item = self.locate(index)
        return self.datasets[which][item]


class TransformedDataset(Dataset):
    """``dataset`` with ``transform`` applied to every item: ``transform(sample, index)`` when the transform
    takes an ``index`` argument (as :class:`handrecon.data.TrainingTransform` does, to seed its augmentation
    by the position in *this* dataset), else ``transform(sample)``."""

    def __init__(self, dataset: Dataset, transform: Callable):
        self.dataset = dataset
        self.transform = transform
        try:
            self._takes_index = "index" in inspect.signature(transform).parameters
        except (TypeError, ValueError):
            self._takes_index = False

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample = self.dataset[index]
        return self.transform(sample, index=index) if self._takes_index else self.transform(sample)
