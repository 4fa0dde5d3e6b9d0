"""Models that ship inside the package (weights in ``handrecon/assets/models``), loadable offline.

>>> from handrecon.models.pretrained import load_pretrained, list_pretrained
>>> model = load_pretrained()                 # the default: MobRecon GhostStack + silhouette, synthetic data
>>> list_pretrained()                         # {name: description}

A bundled model is ``NAME.safetensors`` (float16 weights, at most 25 MB) + ``NAME.json`` (preset, config, the
training recipe and held-out scores), written by :func:`bundle_model` from a run's ``model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from handrecon.fileio import atomic_path

__all__ = ["DEFAULT_MODEL", "list_pretrained", "pretrained_path", "load_pretrained", "bundle_model"]

DEFAULT_MODEL = "mobrecon-ghost-sil-synth"
MAX_BUNDLE_BYTES = 25 * 1024 * 1024


def _folder() -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / "models"


def list_pretrained() -> dict[str, str]:
    """{name: one-line description} of the bundled models."""
    out = {}
    for meta in sorted(_folder().glob("*.json")):
        if meta.with_suffix(".safetensors").exists():
            info = json.loads(meta.read_text())
            out[meta.stem] = info.get("description", info.get("preset", ""))
    return out


def pretrained_path(name: str | None = None) -> Path:
    """``.../assets/models/NAME.safetensors`` of a bundled model (default :data:`DEFAULT_MODEL`)."""
    name = name or DEFAULT_MODEL
    path = _folder() / f"{name}.safetensors"
    if not path.exists() or not path.with_suffix(".json").exists():
        raise ValueError(f"no bundled model named {name!r}; available: {sorted(list_pretrained())}")
    return path


def load_pretrained(name: str | None = None, map_location="cpu") -> torch.nn.Module:
    """The bundled model ``name`` in eval mode, float32 (weights are stored as float16)."""
    from handrecon.models.registry import load_model

    model = load_model(pretrained_path(name), map_location=map_location)
    model.pretrained_name = name or DEFAULT_MODEL
    model.pretrained_info = json.loads(pretrained_path(name).with_suffix(".json").read_text())
    return model.float().eval()


def bundle_model(source, name: str, description: str, extra: dict | None = None, folder=None) -> Path:
    """Copy a saved model (``source`` = PATH of ``save_model``) into the package as float16 ``name``.

    Floating tensors are stored as float16 (halving the size; inference runs in float32 after loading);
    integer buffers (spiral indices) stay exact. ``extra`` (recipe, scores) goes into the JSON.
    """
    from safetensors.torch import load_file, save_file

    from handrecon.models.registry import _paths

    weights, meta = _paths(source)
    state = load_file(str(weights))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    info = json.loads(meta.read_text())
    info.update({"name": name, "description": description, "dtype": "float16"})
    info.update(extra or {})
    out_dir = Path(folder) if folder is not None else _folder()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.safetensors"
    with atomic_path(target) as tmp:
        save_file(half, str(tmp), metadata={"preset": info["preset"]})
    size = target.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        target.unlink()
        raise ValueError(f"{name}: the float16 weights take {size / 2**20:.1f} MB, more than "
                         f"{MAX_BUNDLE_BYTES >> 20} MB; bundle a smaller model")
    with atomic_path(target.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2))
    return target
