"""Building blocks of the model families: encoders, 2D keypoint heads, lifting, spiral operators.

Every block is an ``nn.Module`` (or a pure function) with its shapes in the docstring; models in
:mod:`handrecon.models` compose them as the papers' figures read: encoder -> 2D cues -> lifting -> decoder.
"""

from handrecon.nn.complexity import count_complexity, unused_parameters
from handrecon.nn.densestack import DenseStack, DenseStackConfig
from handrecon.nn.ghoststack import GhostStack, GhostStackConfig
from handrecon.nn.keypoint_heads import HeatmapHead, MapRegHead, RegressionHead, soft_argmax
from handrecon.nn.lifting import GlobalLifting, PoseVertexLifting, pose_pooling
from handrecon.nn.mobile import SeparableUnit, SqueezeExcitation, conv_bn_relu
from handrecon.nn.normalization import ImageNormalization, check_image_batch
from handrecon.nn.silhouette_head import SilhouetteHead
from handrecon.nn.spiral import DSConv, MeshUpsample, SpiralConv, SpiralDecoder, spiral_gather

__all__ = [
    "count_complexity",
    "unused_parameters",
    "DenseStack",
    "DenseStackConfig",
    "GhostStack",
    "GhostStackConfig",
    "HeatmapHead",
    "MapRegHead",
    "RegressionHead",
    "soft_argmax",
    "GlobalLifting",
    "PoseVertexLifting",
    "pose_pooling",
    "SeparableUnit",
    "SqueezeExcitation",
    "conv_bn_relu",
    "ImageNormalization",
    "check_image_batch",
    "SilhouetteHead",
    "DSConv",
    "MeshUpsample",
    "SpiralConv",
    "SpiralDecoder",
    "spiral_gather",
]
