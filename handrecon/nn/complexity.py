"""Model complexity as the papers count it: parameters that are used, and multiply-adds of matrix and
convolution work (torch's flop counter: flops = 2 x multiply-adds; element-wise work, pooling, sampling and
normalisation are not counted, as in the papers' tables)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_complexity", "unused_parameters"]


def _output_sum(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    if isinstance(out, dict):
        out = list(out.values())
    return sum(_output_sum(o) for o in out)


def unused_parameters(model: nn.Module, image: torch.Tensor) -> list[str]:
    """Names of the parameters that get no gradient from a training-mode forward pass on ``image``."""
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        _output_sum(model(image)).backward()
        return [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None)]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def count_complexity(model: nn.Module, input_size: int | None = None) -> dict:
    """{parameters, used_parameters, unused (names), macs} of ``model`` at ``input_size`` (default
    ``model.input_size``); multiply-adds for one image."""
    size = int(input_size or model.input_size)
    total = sum(p.numel() for p in model.parameters())
    image = torch.rand(2, 3, size, size)
    unused = unused_parameters(model, image)
    named = dict(model.named_parameters())
    used = total - sum(named[n].numel() for n in unused)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image[:1])
    finally:
        model.train(was_training)
    return {"parameters": total, "used_parameters": used, "unused": unused, "macs": counter.get_total_flops() // 2,
            "input_size": size}
