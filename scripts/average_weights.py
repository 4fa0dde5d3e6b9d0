"""Average the weights of saved models of one preset (a uniform "model soup", or SWA over cycle ends).

    .venv/bin/python scripts/average_weights.py OUT MODEL MODEL [MODEL ...]

Each MODEL is a saved model (``PATH.safetensors`` + ``PATH.json``, as ``handrecon train`` and the bundle write);
all must be the same preset with the same config. Floating-point tensors (weights and batch-norm statistics)
are averaged in float32; integer buffers (batch-norm step counts) are taken from the last model. OUT is written
as float32 by :func:`handrecon.models.registry.save_model`, its JSON naming the models it averages, so
``handrecon eval OUT ...`` scores it like any run. docs/RESULTS.md has what it gave for the default model's
stage ends.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from handrecon.models.registry import load_model, save_model


def average_state_dicts(states: list[dict]) -> dict:
    """The uniform average of state dicts with the same keys and shapes (integer tensors: the last one's)."""
    if not states:
        raise ValueError("average_state_dicts: no state dicts given")
    keys = set(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != keys:
            raise ValueError(f"average_state_dicts: state {i} has other tensors than state 0 "
                             f"(differing: {sorted(keys ^ set(state))[:5]})")
    out = {}
    for key, first in states[0].items():
        shapes = {tuple(s[key].shape) for s in states}
        if len(shapes) != 1:
            raise ValueError(f"average_state_dicts: tensor {key!r} has several shapes: {sorted(shapes)}")
        if first.is_floating_point():
            out[key] = (sum(s[key].float() for s in states) / len(states)).to(first.dtype)
        else:
            out[key] = states[-1][key].clone()
    return out


def _description(path: str) -> dict:
    meta = Path(path).with_suffix(".json") if Path(path).suffix else Path(f"{path}.json")
    try:
        info = json.loads(meta.read_text())
        return {"preset": info["preset"], "config": info["config"]}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SystemExit(f"average_weights: {meta} is not a saved model's description ({exc})") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="where to write OUT.safetensors + OUT.json")
    parser.add_argument("models", nargs="+", help="saved models (PATH or PATH.safetensors), at least two")
    args = parser.parse_args()
    if len(args.models) < 2:
        raise SystemExit("average_weights: give at least two models to average")
    first = _description(args.models[0])
    for path in args.models[1:]:
        if _description(path) != first:
            raise SystemExit(f"average_weights: {path} is not the preset and config of {args.models[0]}")
    models = [load_model(path) for path in args.models]
    model = models[-1]
    with torch.no_grad():
        model.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    written = save_model(model, args.out, extra={"averaged_from": [str(p) for p in args.models]})
    print(f"wrote the average of {len(models)} models to {written}")


if __name__ == "__main__":
    main()
