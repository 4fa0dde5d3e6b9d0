"""Datasets, augmentation and training targets.

* :mod:`handrecon.data.sample`: the one sample format every reader returns (keys, dtypes, units, frames).
* Readers (torch ``Dataset``\\ s): :class:`FreiHAND` (FreiHAND layout: real FreiHAND and our synthetic
  sets), :class:`RHD`, :class:`HO3D`; :class:`MixedDataset` (weighted mix) and :class:`TransformedDataset`.
* :mod:`handrecon.data.augment`: crops, rotations and colour jitter that keep image, ``K`` and labels
  consistent; two views for consistency learning.
* :mod:`handrecon.data.targets`: heatmaps, silhouettes, normalised keypoints, root-relative and multi-level
  meshes, and :class:`TrainingTransform` (sample -> tensors).

>>> from handrecon.data import FreiHAND, TrainingTransform, TargetConfig, TransformedDataset
>>> ds = TransformedDataset(FreiHAND("data/freihand"), TrainingTransform(TargetConfig(input_size=128)))
"""

from handrecon.data.augment import (
    Augmentation,
    View,
    augment_sample,
    color_jitter,
    crop_sample,
    eval_crop,
    hand_box,
    random_crop,
    relative_transform,
    two_view,
)
from handrecon.data.freihand import FreiHAND
from handrecon.data.ho3d import HO3D, HO3D_TO_FREIHAND
from handrecon.data.mixed import MixedDataset, TransformedDataset
from handrecon.data.rhd import RHD, RHD_TO_FREIHAND
from handrecon.data.sample import (
    FLAG_KEYS,
    SAMPLE_KEYS,
    DatasetError,
    empty_sample,
    make_sample,
    validate_sample,
)
from handrecon.data.targets import (
    TargetConfig,
    TrainingTransform,
    float_to_image,
    denormalize_keypoints,
    downsampling_matrices,
    joint_heatmaps,
    mesh_levels,
    image_to_float,
    normalize_keypoints,
    normalized_affine,
    root_relative,
    silhouette,
)

__all__ = [
    # sample format
    "SAMPLE_KEYS",
    "FLAG_KEYS",
    "DatasetError",
    "make_sample",
    "empty_sample",
    "validate_sample",
    # readers
    "FreiHAND",
    "RHD",
    "RHD_TO_FREIHAND",
    "HO3D",
    "HO3D_TO_FREIHAND",
    "MixedDataset",
    "TransformedDataset",
    # augmentation
    "Augmentation",
    "View",
    "hand_box",
    "random_crop",
    "eval_crop",
    "crop_sample",
    "color_jitter",
    "augment_sample",
    "two_view",
    "relative_transform",
    # targets
    "image_to_float",
    "float_to_image",
    "normalize_keypoints",
    "denormalize_keypoints",
    "normalized_affine",
    "joint_heatmaps",
    "silhouette",
    "root_relative",
    "downsampling_matrices",
    "mesh_levels",
    "TargetConfig",
    "TrainingTransform",
]
