"""Synthetic data engine: uniformly distributed poses and viewpoints on the open hand (MobRecon's design),
procedural appearance, a FreiHAND-layout writer and an on-the-fly torch Dataset.

>>> from handrecon.synth import SceneGenerator, write_dataset, SyntheticHands
>>> sample = SceneGenerator(seed=0).generate([0])[0]        # image, mask, K, keypoints, vertices, ...
>>> write_dataset("data/synth", num=1000, split="training", seed=0, workers=2)
>>> loader = torch.utils.data.DataLoader(SyntheticHands(10**6, seed=1), num_workers=2, batch_size=32)
"""

from handrecon.synth.appearance import AppearanceConfig
from handrecon.synth.dataset import SyntheticHands
from handrecon.synth.poses import (
    NUM_BASE_POSES,
    NUM_UNIFORM_POSES,
    PoseJitter,
    base_pose_angles,
    sample_pose_angles,
    uniform_pose_table,
)
from handrecon.synth.scene import SceneConfig, SceneGenerator
from handrecon.synth.views import NUM_VIEWS, ViewConfig, place_camera
from handrecon.synth.writer import GENERATOR_VERSION, write_dataset

__all__ = [
    "AppearanceConfig",
    "GENERATOR_VERSION",
    "NUM_BASE_POSES",
    "NUM_UNIFORM_POSES",
    "NUM_VIEWS",
    "PoseJitter",
    "SceneConfig",
    "SceneGenerator",
    "SyntheticHands",
    "ViewConfig",
    "base_pose_angles",
    "place_camera",
    "sample_pose_angles",
    "uniform_pose_table",
    "write_dataset",
]
