"""Building blocks of the model families: encoders (DenseStack, GhostStack, ResNet, CMR's cue stacks), 2D
keypoint heads, semantic aggregation, lifting, attention, spiral operators (SpiralConv, DSConv, ISM) and decoders.

Every block is an ``nn.Module`` (or a pure function) with its shapes in the docstring; models in
:mod:`handrecon.models` compose them as the papers' figures read: encoder -> 2D cues -> lifting -> decoder.
"""

from handrecon.nn.aggregation import HeatmapAggregation, aggregation_groups
from handrecon.nn.attention import VectorSelfAttention
from handrecon.nn.complexity import count_complexity, unused_parameters
from handrecon.nn.cue_stack import EncoderStage, ReduceBlock, UNetCueDecoder
from handrecon.nn.densestack import DenseStack, DenseStackConfig
from handrecon.nn.ghoststack import GhostStack, GhostStackConfig
from handrecon.nn.ism import InceptionSpiralModule
from handrecon.nn.keypoint_heads import HeatmapHead, MapRegHead, RegressionHead, soft_argmax
from handrecon.nn.lifting import GlobalLifting, PoseVertexLifting, pose_pooling
from handrecon.nn.multiscale_decoder import MultiScaleSpiralDecoder
from handrecon.nn.mobile import SeparableUnit, SqueezeExcitation, conv_bn_relu
from handrecon.nn.normalization import ImageNormalization, check_image_batch
from handrecon.nn.resnet import ResNet, load_imagenet_weights, resnet18, resnet50
from handrecon.nn.silhouette_head import SilhouetteHead
from handrecon.nn.spiral import DSConv, MeshUpsample, SpiralConv, SpiralDecoder, spiral_gather

__all__ = [
    "HeatmapAggregation",
    "aggregation_groups",
    "VectorSelfAttention",
    "count_complexity",
    "unused_parameters",
    "DenseStack",
    "DenseStackConfig",
    "EncoderStage",
    "ReduceBlock",
    "UNetCueDecoder",
    "GhostStack",
    "GhostStackConfig",
    "InceptionSpiralModule",
    "HeatmapHead",
    "MapRegHead",
    "RegressionHead",
    "soft_argmax",
    "GlobalLifting",
    "PoseVertexLifting",
    "pose_pooling",
    "MultiScaleSpiralDecoder",
    "SeparableUnit",
    "SqueezeExcitation",
    "conv_bn_relu",
    "ImageNormalization",
    "check_image_batch",
    "ResNet",
    "load_imagenet_weights",
    "resnet18",
    "resnet50",
    "SilhouetteHead",
    "DSConv",
    "MeshUpsample",
    "SpiralConv",
    "SpiralDecoder",
    "spiral_gather",
]
