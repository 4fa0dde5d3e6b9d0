"""Named model presets, building, saving and loading.

A preset is a name bound to a model class and a default config (a dataclass). ``build_model(name,
**overrides)`` makes the model; every model keeps ``.preset`` and ``.config`` so that
:func:`save_model` can write weights (safetensors) plus a JSON with both, and :func:`load_model` can
rebuild it anywhere without pickle.

The model interface every family implements: ``model(image)`` with ``image`` float32 (B,3,S,S) RGB in [0, 1]
(each model normalises its input itself, so training, the Predictor and an ONNX export feed the same thing) and
an ``input_size`` attribute (S) returns a dict of tensors:

=====================  ===============  =================================================================
key                    shape            meaning
=====================  ===============  =================================================================
``vertices``           (B,778,3)        root-relative vertices, metres, crop camera frame
``vertices_l1..``      (B,V_l,3)        coarser mesh levels (optional; for per-level losses)
``keypoints_2d``       (B,21,2)         keypoints in input pixels, pixel i centred at i (optional)
``heatmaps``           (B,21,h,w)       joint heatmap logits (optional)
``silhouette``         (B,1,s,s)        silhouette logits over the whole input (optional)
``keypoints``          (B,21,3)         root-relative keypoints (optional; else regressed from vertices)
``global_rotation``    (B,3,3)          the hand's rotation in the crop camera frame (optional)
``vertices_canonical`` (B,778,3)        with ``global_rotation``: the mesh before it, ``vertices = V_c R^T``
=====================  ===============  =================================================================
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Callable

from torch import nn

from handrecon.fileio import atomic_path

__all__ = ["register_model", "build_model", "list_models", "save_model", "load_model", "model_info"]

_REGISTRY: dict[str, tuple[type, Callable[[], object], str]] = {}


def register_model(name: str, model_class: type, config_factory: Callable[[], object], description: str = ""):
    """Bind preset ``name`` to ``model_class(config)`` with ``config_factory()`` as its default config."""
    if name in _REGISTRY:
        raise ValueError(f"model preset {name!r} is already registered")
    _REGISTRY[name] = (model_class, config_factory, description)


def list_models() -> dict[str, str]:
    """{preset name: one-line description}."""
    _load_builtin()
    return {name: desc for name, (_, _, desc) in sorted(_REGISTRY.items())}


def _config_with(config, overrides: dict):
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}; expected some of {sorted(fields)}")
    typed = {}
    for key, value in overrides.items():
        current = getattr(config, key)
        typed[key] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return dataclasses.replace(config, **typed)


def build_model(name: str, **overrides) -> nn.Module:
    """Build preset ``name`` with config fields replaced by ``overrides``."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {sorted(_REGISTRY)}")
    cls, factory, _ = _REGISTRY[name]
    config = _config_with(factory(), overrides)
    model = cls(config)
    model.preset = name
    model.config = config
    return model


def model_info(model: nn.Module) -> dict:
    """JSON-able description: preset, config, parameter count."""
    return {"preset": model.preset, "config": dataclasses.asdict(model.config),
            "parameters": sum(p.numel() for p in model.parameters())}


def _paths(path) -> tuple[Path, Path]:
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_model(model: nn.Module, path, extra: dict | None = None) -> Path:
    """Write ``PATH.safetensors`` (weights and buffers) and ``PATH.json`` (preset, config, ``extra``)."""
    from safetensors.torch import save_file

    weights, meta = _paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"preset": model.preset})
    info = model_info(model)
    info.update(extra or {})
    with atomic_path(meta) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2))
    return weights


def load_model(path, map_location="cpu") -> nn.Module:
    """Rebuild a model saved by :func:`save_model` from ``PATH.safetensors`` + ``PATH.json``."""
    from safetensors.torch import load_file

    weights, meta = _paths(path)
    for p, what in ((weights, "weights"), (meta, "model description")):
        if not p.exists():
            raise FileNotFoundError(f"{p}: {what} file not found (a saved model is PATH.safetensors + PATH.json)")
    try:
        info = json.loads(meta.read_text())
        preset, config = info["preset"], info["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{meta}: expected JSON with 'preset' and 'config' ({exc})") from None
    model = build_model(preset, **config)
    state = load_file(str(weights), device=str(map_location))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{weights}: weights do not fit preset {preset!r} with its config: "
                         f"{str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not fit preset {preset!r}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model


_LOADED = [False]


def _load_builtin():
    if not _LOADED[0]:
        _LOADED[0] = True
        for module in ("tiny", "mobrecon", "cmr"):  # importing a family registers its presets
            importlib.import_module(f"handrecon.models.{module}")
