"""ResNet-18 / ResNet-50 (He et al. 2016) as torchvision lays them out, written here (no torchvision needed),
so that an ImageNet state dict a user supplies loads by name.

The trunk is split so the CMR stages can use parts of it (:mod:`handrecon.models.cmr`):

- :meth:`ResNet.forward_stem`: ``conv1`` 7x7/2 + ``bn1`` + ReLU, (B,3,S,S) -> (B,w,S/2,S/2) (absent with
  ``stem=False``: the stage brings its own S/2 map);
- :meth:`ResNet.forward_layers`: 3x3/2 max-pool + ``layer1..layer4`` -> the four feature maps at S/4 .. S/32;
- :meth:`ResNet.forward_head`: global average pool + ``fc`` -> (B,num_classes) (absent with ``num_classes=0``).

``width`` scales every layer (64 = the standard networks; smaller for fast tests). Parameter counts at width 64
with the 1000-way ``fc`` equal torchvision's: ResNet-18 11,689,512, ResNet-50 25,557,032.

:func:`load_imagenet_weights` loads a torchvision-style state dict (``resnet18-*.pth`` / ``resnet50-*.pth`` read
with ``torch.load(weights_only=True)``, or the same tensors in a ``.safetensors`` file).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50", "load_imagenet_weights",
           "read_state_dict"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; (B,C_in,H,W) -> (B,planes,H/stride,W/stride)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, torchvision's "v1.5") -> 1x1 x4 with a residual;
    (B,C_in,H,W) -> (B,4 planes,H/stride,W/stride)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet trunk with torchvision's module names.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-50.
        width: channels of the stem and of ``layer1``'s blocks (64 in the standard networks).
        num_classes: outputs of ``fc`` after global pooling; 0 = no pooling head.
        stem: build ``conv1``/``bn1`` (the 7x7/2 stem on RGB); False when a stage feeds its own S/2 map of
            ``width`` channels to :meth:`forward_layers`.

    Attributes:
        channels: (stem, layer1, layer2, layer3, layer4) output channels, e.g. (64, 64, 128, 256, 512).
    """

    def __init__(self, block, layers, width: int = 64, num_classes: int = 1000, stem: bool = True):
        super().__init__()
        if width < 1 or len(layers) != 4:
            raise ValueError(f"ResNet needs width >= 1 and 4 stage depths, got width={width}, layers={layers}")
        self.width = int(width)
        self.num_classes = int(num_classes)
        self.inplanes = self.width
        if stem:
            self.conv1 = nn.Conv2d(3, self.width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.width)
        self.has_stem = bool(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, self.width, layers[0], 1)
        self.layer2 = self._make_layer(block, self.width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, self.width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, self.width * 8, layers[3], 2)
        e = block.expansion
        self.channels = (self.width, self.width * e, self.width * 2 * e, self.width * 4 * e, self.width * 8 * e)
        if self.num_classes > 0:
            self.fc = nn.Linear(self.channels[4], self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,width,H/2,W/2)."""
        if not self.has_stem:
            raise RuntimeError("this ResNet was built with stem=False")
        return self.relu(self.bn1(self.conv1(x)))

    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B,width,h,w) stem-level map -> [layer1 (h/2), layer2 (h/4), layer3 (h/8), layer4 (h/16)]."""
        c1 = self.layer1(self.maxpool(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c1, c2, c3, self.layer4(c3)]

    def forward_head(self, c4: torch.Tensor) -> torch.Tensor:
        """(B,C,h,w) last feature map -> (B,num_classes)."""
        if self.num_classes <= 0:
            raise RuntimeError("this ResNet was built with num_classes=0")
        return self.fc(c4.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) normalised image -> (B,num_classes) class logits (the torchvision network)."""
        return self.forward_head(self.forward_layers(self.forward_stem(x))[-1])


def resnet18(width: int = 64, num_classes: int = 1000, stem: bool = True) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), width, num_classes, stem)


def resnet50(width: int = 64, num_classes: int = 1000, stem: bool = True) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), width, num_classes, stem)


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: ``.safetensors``, or a PyTorch file (``.pth``/``.pt``/``.bin``) read with
    ``torch.load(weights_only=True)`` (never unpickling code). A checkpoint that wraps the state dict under
    ``state_dict`` / ``model`` / ``model_state_dict`` is unwrapped; a ``module.`` prefix (DataParallel) is
    removed."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: weights file not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors, unsupported globals, truncated files
            raise ValueError(f"{p}: not a PyTorch weights file readable with weights_only=True ({exc})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{p}: expected a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_imagenet_weights(model: ResNet, path_or_state) -> list[str]:
    """Load torchvision ImageNet weights into ``model`` (a :class:`ResNet` of the same depth at width 64).

    ``path_or_state`` is a file (see :func:`read_state_dict`) or a state dict. Keys are torchvision's
    (``conv1.weight``, ``layer1.0.bn1.running_mean``, ``fc.bias``...), which are this module's names; the
    stem's and ``fc``'s tensors are skipped when ``model`` has no stem / no head, ``num_batches_tracked``
    counters may be absent (older torchvision files). Anything else that does not fit - a missing or extra
    tensor, a shape mismatch (another depth or width, an ``fc`` of another size) - raises a ValueError naming
    the keys. Returns the names of the file's tensors that were skipped.
    """
    state = read_state_dict(path_or_state) if not isinstance(path_or_state, dict) else dict(path_or_state)
    skipped = []
    for k in list(state):
        if (not model.has_stem and k.split(".")[0] in ("conv1", "bn1")) or \
                (model.num_classes <= 0 and k.split(".")[0] == "fc"):
            skipped.append(k)
            del state[k]
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:2]})")
        raise ValueError("ImageNet weights do not fit this ResNet (expected a torchvision resnet18/resnet50 state "
                         f"dict for a width-64 trunk): {'; '.join(parts)}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
    return skipped
