"""Checkpoints of a training run: the model for use, and the state for resuming.

Layout of a run folder ``OUT``::

    OUT/model.safetensors, OUT/model.json    the latest weights via handrecon.models.save_model; the JSON
                                             holds preset, model config, "step" and "training_config"
    OUT/checkpoint/model.safetensors (+ .json)  the weights of the resumable state
    OUT/checkpoint/state.pt                  optimiser, scheduler, GradScaler, step, epoch, batch in epoch,
                                             world size, batch size, RNG states of every rank, config

``state.pt`` holds only tensors, numbers, strings, lists and dicts, so ``torch.load(path,
weights_only=True)`` reads it (this module never loads with ``weights_only=False``). NumPy and Python RNG
states are stored as tensors and plain numbers.

A checkpoint is complete or absent: its files are written into a temporary folder beside it
(``OUT/.checkpoint.XXXX``), each file itself via temp + rename, and the folder then replaces
``OUT/checkpoint`` by renames (the previous one is moved to ``OUT/.checkpoint.old`` first and deleted
after; :func:`find_checkpoint` falls back to it if a crash fell between the two renames).
"""

from __future__ import annotations

import os
import random
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from handrecon.fileio import atomic_path

__all__ = ["CHECKPOINT_DIR", "STATE_FILE", "get_rng_state", "set_rng_state", "save_checkpoint", "find_checkpoint",
           "load_checkpoint"]

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"
_OLD = ".checkpoint.old"
FORMAT = 1


# ----------------------------------------------------------------------------------------------------------
# RNG states as plain data
# ----------------------------------------------------------------------------------------------------------
def get_rng_state() -> dict:
    """torch (CPU and every CUDA device), NumPy global and Python ``random`` states as tensors / numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
    }


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))


# ----------------------------------------------------------------------------------------------------------
# writing and reading
# ----------------------------------------------------------------------------------------------------------
def save_checkpoint(out_dir, model, state: dict, extra: dict | None = None) -> Path:
    """Write ``OUT/checkpoint/{model.safetensors, model.json, state.pt}`` as one unit; returns the folder.

    ``model``: the bare (not DDP-wrapped) model; ``state``: plain data (see the module docstring).
    """
    from handrecon.models import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final, old = out / CHECKPOINT_DIR, out / _OLD
    tmp = out / f".checkpoint.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # (not mkdtemp: the folder keeps the umask's permissions)
    try:
        save_model(model, tmp / "model", extra=extra)
        with atomic_path(tmp / STATE_FILE) as path:
            torch.save(state, path)
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(out_dir) -> Path | None:
    """The run's complete checkpoint folder, or None. Restores ``.checkpoint.old`` if a save was cut off
    between its renames, and removes temporary folders of unfinished saves."""
    out = Path(out_dir)
    if not out.is_dir():
        return None
    final, old = out / CHECKPOINT_DIR, out / _OLD
    if not (final / STATE_FILE).is_file() and (old / STATE_FILE).is_file():
        if final.exists():
            shutil.rmtree(final)
        old.rename(final)
    for stale in out.glob(".checkpoint.*"):
        if stale.is_dir() and stale.name != _OLD:
            shutil.rmtree(stale, ignore_errors=True)
    return final if (final / STATE_FILE).is_file() and (final / "model.safetensors").is_file() else None


def load_checkpoint(folder, map_location="cpu") -> tuple[dict, dict]:
    """(state, model state dict) of a checkpoint folder; ``state.pt`` read with ``weights_only=True``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    state = torch.load(folder / STATE_FILE, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{folder / STATE_FILE}: not a handrecon training state (format {FORMAT})")
    weights = load_file(str(folder / "model.safetensors"), device=str(map_location))
    return state, weights
