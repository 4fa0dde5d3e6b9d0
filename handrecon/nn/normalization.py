"""Input checks and image normalisation shared by every model.

Models take float RGB in [0, 1] and normalise inside (:class:`ImageNormalization`), so training, the
Predictor and an ONNX export all feed the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ImageNormalization", "check_image_batch"]


def check_image_batch(x: torch.Tensor, name: str = "image", multiple: int = 1) -> None:
    """Raise a ValueError naming ``name`` unless ``x`` is a float (B,3,H,W) tensor with H, W divisible by
    ``multiple``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor with RGB in [0, 1], got dtype {x.dtype}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(f"{name} height and width must be multiples of {multiple}, got {tuple(x.shape[2:])}")


class ImageNormalization(nn.Module):
    """(B,3,H,W) RGB in [0, 1] -> ``(x - mean) / std`` per channel.

    The default ``mean = std = 0.5`` maps [0, 1] to [-1, 1] as the CMR/MobRecon code does; ResNet
    backbones loading ImageNet weights use the ImageNet statistics instead.
    """

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
