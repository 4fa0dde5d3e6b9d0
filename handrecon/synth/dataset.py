"""Synthetic samples rendered on the fly, inside DataLoader workers, for training without disk.

Sample ``i`` of ``SyntheticHands(seed=s)`` is the same image and labels as sample ``i`` written by
``handrecon synth --seed s`` (before JPEG encoding), whichever worker renders it. Each worker process opens
its own GL context on first use. Start DataLoader workers with
``multiprocessing_context=SyntheticHands.multiprocessing_context`` ("spawn"): Mesa's rasteriser threads do
not survive ``fork`` when a GL context lives in another thread of the parent, and the worker would hang.
"""

from __future__ import annotations

import os

from torch.utils.data import Dataset

from handrecon.synth.scene import SceneConfig, SceneGenerator

__all__ = ["SyntheticHands"]

_EXTRA = ("source", "view", "occluded")


class SyntheticHands(Dataset):
    """``length`` synthetic samples in the common sample format (``handrecon.data.sample``).

    Args:
        length: number of samples (indices ``offset .. offset + length - 1`` of the seed's stream; use a
            large length to draw fresh samples "forever").
        seed: stream seed.
        config: :class:`SceneConfig`.
        offset: first index, so that training and validation streams of one seed can be kept apart.
        transform: optional callable applied to each sample (e.g. ``handrecon.data.TrainingTransform``).
    """

    #: How DataLoader workers should be started (see the module docstring).
    multiprocessing_context = "spawn"

    def __init__(self, length: int, seed: int = 0, config: SceneConfig | None = None, offset: int = 0,
                 transform=None):
        if int(length) < 1:
            raise ValueError(f"length must be positive, got {length}")
        if int(offset) < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self.length, self.seed, self.offset = int(length), int(seed), int(offset)
        self.config = config or SceneConfig()
        self.transform = transform
        self._generator = None

    def __len__(self) -> int:
        return self.length

    @property
    def generator(self) -> SceneGenerator:
        if self._generator is None:  # lazily, so each DataLoader worker builds its own
            # llvmpipe renders these small frames fastest on one thread, leaving cores to the workers.
            os.environ.setdefault("LP_NUM_THREADS", "1")
            self._generator = SceneGenerator(self.seed, self.config)
        return self._generator

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_generator"] = None  # GL contexts and models are per process
        return state

    def __getitem__(self, index: int) -> dict:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        index = index % self.length
        sample = self.generator.generate([self.offset + index])[0]
        for key in _EXTRA:
            sample.pop(key)
        sample = _as_common(sample)
        return self.transform(sample) if self.transform is not None else sample


def _as_common(sample: dict) -> dict:
    from handrecon.data.sample import make_sample

    return make_sample(**sample)
