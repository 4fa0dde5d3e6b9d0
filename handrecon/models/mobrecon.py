"""MobRecon (Chen et al., CVPR 2022): mobile hand mesh reconstruction, read top to bottom as Figure 2.

encoder (DenseStack or GhostStack, :mod:`handrecon.nn`) -> 2D keypoints (MapReg, or the heatmap / direct
regression alternatives of Table 2) -> lifting (pose pooling by grid sampling + PVL, or the global-pool + FC
baseline) -> 3D decoder (DSConv up-blocks 49 -> 98 -> 195 -> 389 -> 778, or SpiralConv++ for Table 4) ->
root-relative vertices. Presets:

==========================  ====================================================================
``mobrecon-dense``          DenseStack + MapReg + PVL + DSConv, 128 px (the paper's model)
``mobrecon-ghost``          GhostStack + MapReg + PVL + DSConv, 128 px
``mobrecon-dense-sil``      ``mobrecon-dense`` plus a light silhouette head (for 1D root registration)
``mobrecon-ghost-sil``      ``mobrecon-ghost`` plus the silhouette head
==========================  ====================================================================

Ablations are config overrides, e.g. ``build_model("mobrecon-dense", keypoint_head="heatmap")``,
``lifting="global"`` or ``mesh_conv="spiralconv"``.

The decoder predicts vertices in units of ``vertex_scale`` metres (0.2 m, the scale the authors normalise
meshes by), so its layers work at unit scale; the output is in metres. ``template_residual`` (our addition, off
in the paper's presets) adds the bundled hand's relaxed template to the decoder's output and starts the last
layer at zero, so training starts from a plausible hand instead of a blob: much faster convergence when
compute is short. ``global_rotation`` (our addition too) regresses the hand's orientation
(:class:`handrecon.nn.rotation_head.GlobalRotationHead`) and has the decoder predict the hand in the hand model's
canonical frame, rotated into the camera frame at the end; the model then also outputs ``global_rotation``
(B,3,3), supervised by the ``rotation`` loss term where the labels hold a pose, and the decoder's own output
``vertices_canonical`` (B,778,3), which the ``canonical_mesh`` term supervises against the labelled mesh turned
back by the labelled rotation, so the decoder learns the articulation apart from the rotation head's errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from handrecon.hand.keypoints import NUM_KEYPOINTS
from handrecon.models.common import default_template, default_topology
from handrecon.models.registry import register_model
from handrecon.nn.densestack import DenseStack, DenseStackConfig
from handrecon.nn.keypoint_heads import HeatmapHead, MapRegHead, RegressionHead
from handrecon.nn.lifting import GlobalLifting, PoseVertexLifting, pose_pooling
from handrecon.nn.normalization import ImageNormalization, check_image_batch
from handrecon.nn.rotation_head import GlobalRotationHead
from handrecon.nn.silhouette_head import SilhouetteHead
from handrecon.nn.spiral import DSConv, SpiralConv, SpiralDecoder

__all__ = ["MobReconConfig", "MobRecon"]

ENCODERS = ("dense", "ghost")
KEYPOINT_HEADS = ("mapreg", "heatmap", "regression")
LIFTINGS = ("pvl", "global")
MESH_CONVS = {"dsconv": DSConv, "spiralconv": SpiralConv}


@dataclass(frozen=True)
class MobReconConfig:
    """Configuration of one MobRecon variant.

    Attributes:
        input_size: input side S in pixels (128 in the paper; a multiple of 32).
        encoder: ``"dense"`` (DenseStack) or ``"ghost"`` (GhostStack).
        keypoint_head: ``"mapreg"``, ``"heatmap"`` (soft-argmax) or ``"regression"`` (Table 2).
        lifting: ``"pvl"`` (pose pooling + PVL) or ``"global"`` (global pooling + FC, Table 2).
        mesh_conv: ``"dsconv"`` or ``"spiralconv"`` (SpiralConv++, Table 4).
        spiral_length: spiral neighbours S per vertex (9).
        latent_channels: C_e, width of the pooled features (256).
        decoder_channels: widths of the four up-blocks, coarse to fine.
        silhouette: add the silhouette head (our addition; output ``silhouette`` logits).
        silhouette_size, heatmap_size: output map sides (default S / 2).
        vertex_scale: metres per decoder output unit.
        template_residual: predict offsets from the relaxed template (see the module docstring).
        global_rotation: decode in the canonical hand frame and rotate by a regressed global rotation (see the
            module docstring).
    """

    input_size: int = 128
    encoder: str = "dense"
    keypoint_head: str = "mapreg"
    lifting: str = "pvl"
    mesh_conv: str = "dsconv"
    spiral_length: int = 9
    latent_channels: int = 256
    decoder_channels: tuple = (256, 128, 64, 32)
    silhouette: bool = False
    silhouette_size: int | None = None
    heatmap_size: int | None = None
    vertex_scale: float = 0.2
    template_residual: bool = False
    global_rotation: bool = False

    def __post_init__(self):
        for name, allowed in (("encoder", ENCODERS), ("keypoint_head", KEYPOINT_HEADS), ("lifting", LIFTINGS),
                              ("mesh_conv", tuple(MESH_CONVS))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"MobReconConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"MobReconConfig.input_size must be a positive multiple of 32, got {self.input_size}")
        if len(self.decoder_channels) != 4:
            raise ValueError(f"MobReconConfig.decoder_channels needs 4 widths (49 -> 778 in four up-blocks), "
                             f"got {self.decoder_channels}")


def _encoder(name: str) -> nn.Module:
    if name == "dense":
        return DenseStack(DenseStackConfig())
    from handrecon.nn.ghoststack import GhostStack, GhostStackConfig

    return GhostStack(GhostStackConfig())


class MobRecon(nn.Module):
    """image (B,3,S,S) RGB in [0, 1] -> dict (see :mod:`handrecon.models.registry`): ``vertices`` (B,778,3),
    ``keypoints_2d`` (B,21,2) input pixels, ``heatmaps`` / ``silhouette`` logits and ``global_rotation``
    (B,3,3) with ``vertices_canonical`` (B,778,3) when configured."""

    def __init__(self, config: MobReconConfig | None = None):
        super().__init__()
        cfg = config or MobReconConfig()
        self.input_size = S = int(cfg.input_size)
        self.vertex_scale = float(cfg.vertex_scale)
        topo = default_topology()
        self.normalize = ImageNormalization()
        self.encoder = _encoder(cfg.encoder)
        enc = self.encoder
        # 2D keypoints
        if cfg.keypoint_head == "mapreg":
            self.keypoint_head = MapRegHead(enc.maps_channels, S // 8)
        elif cfg.keypoint_head == "heatmap":
            self.keypoint_head = HeatmapHead(enc.maps_channels, cfg.heatmap_size or S // 2)
        else:
            self.keypoint_head = RegressionHead(enc.latent_channels + enc.maps_channels)
        self.silhouette_head = (SilhouetteHead(enc.maps_channels, enc.fine_channels, cfg.silhouette_size or S // 2)
                                if cfg.silhouette else None)
        # lifting to the coarsest mesh level
        coarse = topo.num_vertices[4]
        self.latent_proj = nn.Conv2d(enc.latent_channels, cfg.latent_channels, 1, bias=False)
        self.lifting_kind = cfg.lifting
        self.lifting = (PoseVertexLifting(coarse) if cfg.lifting == "pvl"
                        else GlobalLifting(cfg.latent_channels, coarse, cfg.latent_channels))
        # 3D decoder
        spirals = [topo.spiral(level, cfg.spiral_length) for level in range(4)]
        self.decoder = SpiralDecoder(cfg.latent_channels, cfg.decoder_channels, spirals, topo.up,
                                     conv=MESH_CONVS[cfg.mesh_conv])
        self.template_residual = bool(cfg.template_residual)
        if self.template_residual:
            self.register_buffer("template", default_template().clone())
            # start exactly at the template: zero the head's last linear map (only that one, so gradients flow)
            last = self.decoder.head.pointwise if cfg.mesh_conv == "dsconv" else self.decoder.head.linear
            for p in last.parameters():
                nn.init.zeros_(p)
        # the rotation head reads the flattened S/32 bottleneck and the 2D keypoints
        self.rotation_head = (GlobalRotationHead(cfg.latent_channels * (S // 32) ** 2 + 2 * NUM_KEYPOINTS)
                              if cfg.global_rotation else None)

    def forward(self, image: torch.Tensor) -> dict:
        check_image_batch(image, "image", multiple=32)
        S = self.input_size
        if image.shape[-1] != S or image.shape[-2] != S:
            raise ValueError(f"image must be {S}x{S} (the model's input_size), got {tuple(image.shape[-2:])}")
        feats = self.encoder(self.normalize(image))
        if isinstance(self.keypoint_head, RegressionHead):
            cues = self.keypoint_head(feats["latent"], feats["maps"])
        else:
            cues = self.keypoint_head(feats["maps"])
        uv = cues["uv"]
        latent = self.latent_proj(feats["latent"])
        if self.lifting_kind == "pvl":
            coarse = self.lifting(pose_pooling(latent, uv))
        else:
            coarse = self.lifting(latent)
        vertices = self.decoder(coarse) * self.vertex_scale
        if self.template_residual:
            vertices = vertices + self.template
        rotation = None
        if self.rotation_head is not None:  # the decoder's output is in the canonical frame: rotate it
            rotation = self.rotation_head(torch.cat([latent.flatten(1), uv.flatten(1)], 1))
            canonical, vertices = vertices, vertices @ rotation.transpose(1, 2)
        out = {"vertices": vertices, "keypoints_2d": uv * S - 0.5}
        if rotation is not None:
            out["global_rotation"] = rotation
            out["vertices_canonical"] = canonical
        if "heatmaps" in cues:
            out["heatmaps"] = cues["heatmaps"]
        if self.silhouette_head is not None:
            out["silhouette"] = self.silhouette_head(feats["maps"], feats["fine"])
        return out


def _preset(**fields):
    return lambda: MobReconConfig(**fields)


register_model("mobrecon-dense", MobRecon, _preset(encoder="dense"),
               "MobRecon: DenseStack + MapReg + PVL + DSConv, 128 px (paper Table 4: 8.1 M params, 439.9 M MACs)")
register_model("mobrecon-ghost", MobRecon, _preset(encoder="ghost"),
               "MobRecon: GhostStack + MapReg + PVL + DSConv, 128 px (paper Table 4: 5.3 M params, 123.5 M MACs)")
register_model("mobrecon-dense-sil", MobRecon, _preset(encoder="dense", silhouette=True),
               "mobrecon-dense plus a light silhouette head (enables 1D root registration)")
register_model("mobrecon-ghost-sil", MobRecon, _preset(encoder="ghost", silhouette=True),
               "mobrecon-ghost plus a light silhouette head (enables 1D root registration)")
