"""CMR (Chen et al., CVPR 2021): camera-space hand mesh recovery via semantic aggregation, read top to bottom
as Figure 2.

2D cues: a stack of ResNet encoder + U-Net decoder pairs (:mod:`handrecon.nn.cue_stack`) predicts joint
heatmaps and/or the silhouette at S/2; each later stage reads the previous stage's S/2 features concatenated
with the predicted maps (sigmoid) -> semantic aggregation of the last stack's heatmaps (tip / part / level
group sums, :mod:`handrecon.nn.aggregation`) -> the mesh stage: one more ResNet encoder whose pooled 1000-d
code (optionally through self-attention) feeds the spiral decoder (:mod:`handrecon.nn.multiscale_decoder`: ISM,
multi-scale prediction with coarse-to-fine fusion, self-regression), while a parallel U-Net decoder on the same
features re-predicts heatmaps + silhouette. Root recovery (section 3.2) is :mod:`handrecon.registration`.

==================  =============================================================================
``cmr-sg-r18``      silhouette stack -> pose stack -> tip groups; ResNet-18 (the paper's CMR-SG)
``cmr-pg-r18``      pose stack -> pose stack -> tip groups; ResNet-18 (CMR-PG)
``cmr-p-r18``       one pose stack, H_p as it is (CMR-P, Table 2 row 3); no attention
``cmr-g-r18``       one pose stack, tip + part groups, no attention (the authors' CMR-G code)
``cmr-sg-r50``      CMR-SG with ResNet-50
``cmr-pg-r50``      CMR-PG with ResNet-50
==================  =============================================================================

Ablations are config overrides. Table 2: ``stacks=()`` (no cues), ``stacks=("silhouette",)`` (H_s),
``("pose",)`` (H_p), ``("pose+silhouette",)`` (cat), ``("pose",)`` with ``aggregation="sum"`` (sum(H_p)) or
``"group"``; Table 3: ``groups`` any of ``("part", "level", "tip")``; Table 7 / Table 1: ``ism``,
``multiscale``, ``self_regression`` (all False = the SpiralConv++ baseline decoder).

Outputs (:mod:`handrecon.models.registry`): ``vertices`` (B,778,3) metres; with ``multiscale``,
``vertices_l1..l3`` (389, 195, 98 vertices: CMR predicts at the four finest levels, not at the 49-vertex one);
``heatmaps`` (B,21,S/2,S/2) and ``silhouette`` (B,1,S/2,S/2) logits (from the parallel decoder, or else from the
last stack predicting them); ``keypoints_2d`` (B,21,2) input pixels by soft-argmax of the heatmaps. With
``stack_outputs`` also ``stack{k}_heatmaps`` / ``stack{k}_silhouette`` of every stack, which the engine's
``heatmap`` / ``silhouette`` loss terms then supervise too, as the authors do.

The decoder predicts in units of ``vertex_scale`` metres (0.2 m: the authors divide root-relative meshes by
0.2), the output is metres. ImageNet initialisation: ``model.load_imagenet_weights(path)`` with torchvision's
``resnet18``/``resnet50`` weights (loads every stage's trunk); then ``save_model`` and train with
``model.init`` pointing at the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from handrecon.models.common import default_topology
from handrecon.models.registry import register_model
from handrecon.nn.aggregation import HeatmapAggregation
from handrecon.nn.attention import VectorSelfAttention
from handrecon.nn.cue_stack import EncoderStage, UNetCueDecoder
from handrecon.nn.keypoint_heads import soft_argmax
from handrecon.nn.multiscale_decoder import MultiScaleSpiralDecoder
from handrecon.nn.normalization import ImageNormalization, check_image_batch
from handrecon.nn.resnet import load_imagenet_weights, read_state_dict, resnet18, resnet50

__all__ = ["CMRConfig", "CMR", "CMR_REFERENCE_COMPLEXITY"]

BACKBONES = {"resnet18": resnet18, "resnet50": resnet50}
#: maps each stack predicts: name -> (heatmaps?, silhouette?)
STACK_CUES = {"silhouette": (False, True), "pose": (True, False), "pose+silhouette": (True, True)}
AGGREGATIONS = ("maps", "sum", "group")
GROUPS = ("part", "level", "tip")
NORMALIZATIONS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "half": ((0.5,) * 3, (0.5,) * 3)}
NUM_KEYPOINTS = 21

#: The authors' networks as their code builds them (REFERENCE.md; 224 px): (parameters, multiply-adds, source).
#: CMR-SG's 79.4 M built include ResNet-18's fc of the second stage (0.5 M), which nothing uses.
CMR_REFERENCE_COMPLEXITY = {
    "cmr-sg-r18": (78.9e6, 15.59e9, "CMR code: 79.4 M built, 0.5 M of them unused"),
    "cmr-pg-r18": (79.5e6, 16.37e9, "CMR code (parameters as built)"),
    "cmr-g-r18": (62.3e6, 11.05e9, "CMR code, no attention"),
}


@dataclass(frozen=True)
class CMRConfig:
    """Configuration of one CMR variant.

    Attributes:
        input_size: input side S in pixels (224 in the paper; a multiple of 32).
        backbone: ``"resnet18"`` or ``"resnet50"``; every stage has its own trunk.
        backbone_width: ResNet width (64 = the standard networks; smaller for tests).
        latent_size: width of the mesh stage's pooled code (ResNet's fc: 1000).
        stacks: the cue each 2D stack predicts, in order: ``"silhouette"``, ``"pose"`` (21 heatmaps) or
            ``"pose+silhouette"``; ``()`` = no 2D cues (the mesh stage reads the image).
        aggregation: what the mesh stage reads of the last stack's heatmaps: ``"maps"`` (as they are),
            ``"sum"`` (one map, their sum) or ``"group"`` (the heatmaps plus the group sums of ``groups``).
            A silhouette of the last stack is passed as it is.
        groups: group kinds for ``"group"``: any of ``"part"``, ``"level"``, ``"tip"`` (Table 3).
        parallel_decoder: the convolutional decoder re-predicting heatmaps + silhouette from the mesh stage.
        attention: self-attention over the code before the mesh decoder (the authors' CMR-SG/-PG code).
        ism, multiscale, self_regression: the spiral decoder's mechanisms (Table 7).
        decoder_channels: mesh decoder widths at 98, 195, 389 and 778 vertices.
        spiral_length: spiral neighbours per vertex (27; the ISM uses the first 27, 18 and 9).
        normalization: input statistics, ``"imagenet"`` (for ImageNet weights) or ``"half"`` ([0,1] -> [-1,1]).
        vertex_scale: metres per decoder output unit.
        stack_outputs: also output every stack's maps (``stack{k}_heatmaps`` / ``stack{k}_silhouette``).
    """

    input_size: int = 224
    backbone: str = "resnet18"
    backbone_width: int = 64
    latent_size: int = 1000
    stacks: tuple = ("silhouette", "pose")
    aggregation: str = "group"
    groups: tuple = ("tip",)
    parallel_decoder: bool = True
    attention: bool = True
    ism: bool = True
    multiscale: bool = True
    self_regression: bool = True
    decoder_channels: tuple = (512, 256, 128, 64)
    spiral_length: int = 27
    normalization: str = "imagenet"
    vertex_scale: float = 0.2
    stack_outputs: bool = False

    def __post_init__(self):
        def fail(name, why):
            raise ValueError(f"CMRConfig.{name} {why}, got {getattr(self, name)!r}")

        for name, allowed in (("backbone", tuple(BACKBONES)), ("aggregation", AGGREGATIONS),
                              ("normalization", tuple(NORMALIZATIONS))):
            if getattr(self, name) not in allowed:
                fail(name, f"must be one of {allowed}")
        for name in ("parallel_decoder", "attention", "ism", "multiscale", "self_regression", "stack_outputs"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "must be true or false")

        def positive_int(name, minimum=1):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                fail(name, f"must be an int >= {minimum}")

        positive_int("input_size", 32)
        if self.input_size % 32:
            fail("input_size", "must be a positive multiple of 32")
        positive_int("backbone_width")
        positive_int("latent_size")
        positive_int("spiral_length", 3 if self.ism else 1)
        if not isinstance(self.stacks, tuple) or any(s not in STACK_CUES for s in self.stacks):
            fail("stacks", f"must be a list of cues, each one of {tuple(STACK_CUES)}")
        if not isinstance(self.groups, tuple) or any(g not in GROUPS for g in self.groups) \
                or len(set(self.groups)) != len(self.groups):
            fail("groups", f"must be a list of distinct group kinds from {GROUPS}")
        if self.aggregation == "group" and not self.groups:
            fail("groups", "must name at least one group kind when aggregation is 'group'")
        if self.aggregation != "maps" and not (self.stacks and STACK_CUES[self.stacks[-1]][0]):
            fail("aggregation", "'sum' and 'group' need the last stack to predict pose (heatmaps)")
        channels = self.decoder_channels
        if not isinstance(channels, tuple) or len(channels) != 4 or any(
                isinstance(c, bool) or not isinstance(c, int) or c < (4 if self.ism else 1) for c in channels):
            fail("decoder_channels", f"needs 4 widths >= {4 if self.ism else 1} (98, 195, 389, 778 vertices)")
        if not (isinstance(self.vertex_scale, (int, float)) and self.vertex_scale > 0):
            fail("vertex_scale", "must be a positive number")


class CMR(nn.Module):
    """image (B,3,S,S) RGB in [0, 1] -> dict (see the module docstring and :mod:`handrecon.models.registry`)."""

    def __init__(self, config: CMRConfig | None = None):
        super().__init__()
        cfg = config or CMRConfig()
        self.input_size = int(cfg.input_size)
        self.vertex_scale = float(cfg.vertex_scale)
        self.stack_outputs = cfg.stack_outputs
        topo = default_topology()
        make_backbone = BACKBONES[cfg.backbone]
        w = int(cfg.backbone_width)
        self.normalize = ImageNormalization(*NORMALIZATIONS[cfg.normalization])

        # 2D cues: encoder-decoder stacks; stage k > 1 reads stage k-1's S/2 map + its predicted maps
        self.cues = [STACK_CUES[name] for name in cfg.stacks]
        self.stack_encoders = nn.ModuleList()
        self.stack_decoders = nn.ModuleList()
        in_channels = None
        for k, (pose, sil) in enumerate(self.cues):
            enc = EncoderStage(make_backbone(w, num_classes=0, stem=k == 0), in_channels)
            maps = NUM_KEYPOINTS * pose + sil
            self.stack_encoders.append(enc)
            self.stack_decoders.append(UNetCueDecoder(enc.channels[1:], maps))
            in_channels = enc.channels[0] + maps

        # semantic aggregation of the last stack's heatmaps
        self.aggregation = cfg.aggregation
        self.aggregate = None
        if self.cues and cfg.aggregation == "sum":
            self.aggregate = HeatmapAggregation(("all",))
            in_channels = in_channels - NUM_KEYPOINTS + 1
        elif self.cues and cfg.aggregation == "group":
            self.aggregate = HeatmapAggregation(cfg.groups)
            in_channels = in_channels + self.aggregate.num_groups

        # mesh stage: encoder -> 1000-d code (-> self-attention) -> spiral decoder; parallel 2D decoder
        self.mesh_encoder = EncoderStage(make_backbone(w, num_classes=cfg.latent_size, stem=not self.cues),
                                         in_channels)
        self.parallel_decoder = (UNetCueDecoder(self.mesh_encoder.channels[1:], NUM_KEYPOINTS + 1)
                                 if cfg.parallel_decoder else None)
        self.attention = VectorSelfAttention(cfg.latent_size) if cfg.attention else None
        spirals = [topo.spiral(level, cfg.spiral_length) for level in range(4)]
        self.mesh_decoder = MultiScaleSpiralDecoder(cfg.latent_size, topo.num_vertices[4], cfg.decoder_channels,
                                                    spirals, topo.up, ism=cfg.ism, multiscale=cfg.multiscale,
                                                    self_regression=cfg.self_regression)

    # ------------------------------------------------------------------------------------------------------
    def _mesh_input(self, features: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """cat(previous S/2 features, the last stack's maps aggregated as configured)."""
        pose, sil = self.cues[-1]
        parts = [features]
        heat = maps[:, :NUM_KEYPOINTS] if pose else None
        if self.aggregation == "sum":
            parts.append(self.aggregate(heat))
        elif self.aggregation == "group":
            parts += [heat, self.aggregate(heat)]
        elif pose:
            parts.append(heat)
        if sil:
            parts.append(maps[:, -1:])
        return torch.cat(parts, 1)

    def forward(self, image: torch.Tensor) -> dict:
        check_image_batch(image, "image", multiple=32)
        S = self.input_size
        if image.shape[-1] != S or image.shape[-2] != S:
            raise ValueError(f"image must be {S}x{S} (the model's input_size), got {tuple(image.shape[-2:])}")
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(image)
        latest: dict[str, torch.Tensor] = {}
        stem = maps = None
        for k, (enc, dec, (pose, sil)) in enumerate(zip(self.stack_encoders, self.stack_decoders, self.cues)):
            feats = enc(x if k == 0 else torch.cat([stem, maps], 1))
            logits = dec(feats["features"])
            if pose:
                latest["heatmaps"] = logits[:, :NUM_KEYPOINTS]
            if sil:
                latest["silhouette"] = logits[:, -1:]
            if self.stack_outputs:
                out.update({f"stack{k + 1}_{key}": latest[key] for key, on in
                            (("heatmaps", pose), ("silhouette", sil)) if on})
            stem, maps = feats["stem"], torch.sigmoid(logits)
        if self.cues:
            x = self._mesh_input(stem, maps)
        feats = self.mesh_encoder(x)
        code = feats["code"]
        if self.attention is not None:
            code = self.attention(code)
        preds = self.mesh_decoder(code)
        out["vertices"] = preds[0] * self.vertex_scale
        for level, pred in enumerate(preds[1:], start=1):
            out[f"vertices_l{level}"] = pred * self.vertex_scale
        if self.parallel_decoder is not None:
            logits = self.parallel_decoder(feats["features"])
            latest = {"heatmaps": logits[:, :NUM_KEYPOINTS], "silhouette": logits[:, NUM_KEYPOINTS:]}
        out.update(latest)
        if "heatmaps" in latest:
            out["keypoints_2d"] = soft_argmax(latest["heatmaps"]) * S - 0.5
        return out

    # ------------------------------------------------------------------------------------------------------
    def backbones(self) -> list:
        """Every stage's ResNet trunk, first stage first (the mesh stage's last)."""
        return [enc.backbone for enc in self.stack_encoders] + [self.mesh_encoder.backbone]

    def load_imagenet_weights(self, path_or_state) -> None:
        """Initialise every stage's ResNet from torchvision ImageNet weights (a ``resnet18``/``resnet50`` state
        dict file, ``.pth`` read with ``weights_only=True`` or ``.safetensors``; see
        :func:`handrecon.nn.resnet.load_imagenet_weights`). Stages without a stem skip ``conv1``/``bn1``; the
        mesh stage's ``fc`` is loaded when ``latent_size`` is 1000. Raises ValueError when the file does not fit
        (another depth, ``backbone_width`` other than 64)."""
        state = read_state_dict(path_or_state) if not isinstance(path_or_state, dict) else dict(path_or_state)
        for backbone in self.backbones():
            part = state
            fc = state.get("fc.weight")
            if backbone.num_classes > 0 and fc is not None and fc.shape[0] != backbone.num_classes:
                part = {k: v for k, v in state.items() if not k.startswith("fc.")}
                backbone_fc = {k: v for k, v in backbone.state_dict().items() if k.startswith("fc.")}
                part.update(backbone_fc)  # keep this model's own fc
            load_imagenet_weights(backbone, part)


def _preset(**fields):
    return lambda: CMRConfig(**fields)


_SG = dict(stacks=("silhouette", "pose"), aggregation="group", groups=("tip",), attention=True)
_PG = dict(stacks=("pose", "pose"), aggregation="group", groups=("tip",), attention=True)

register_model("cmr-sg-r18", CMR, _preset(backbone="resnet18", **_SG),
               "CMR-SG: silhouette stack -> pose stack -> tip groups -> ISM spiral decoder; ResNet-18, 224 px "
               "(authors' code: 78.9 M used params, 15.6 G MACs)")
register_model("cmr-pg-r18", CMR, _preset(backbone="resnet18", **_PG),
               "CMR-PG: pose stack -> pose stack -> tip groups -> ISM spiral decoder; ResNet-18, 224 px "
               "(authors' code: 79.5 M params, 16.4 G MACs)")
register_model("cmr-p-r18", CMR, _preset(backbone="resnet18", stacks=("pose",), aggregation="maps",
                                         attention=False),
               "CMR-P: one pose stack, heatmaps as they are (Table 2 row 3); ResNet-18, 224 px")
register_model("cmr-g-r18", CMR, _preset(backbone="resnet18", stacks=("pose",), aggregation="group",
                                         groups=("tip", "part"), attention=False),
               "CMR-G: one pose stack, tip + part groups, no attention; ResNet-18, 224 px "
               "(authors' code: 62.3 M params, 11.05 G MACs)")
register_model("cmr-sg-r50", CMR, _preset(backbone="resnet50", **_SG),
               "CMR-SG with ResNet-50, 224 px")
register_model("cmr-pg-r50", CMR, _preset(backbone="resnet50", **_PG),
               "CMR-PG with ResNet-50, 224 px")
