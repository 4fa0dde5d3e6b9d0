"""Export a model to ONNX (dynamic batch), verified against PyTorch.

>>> from handrecon.export import export_onnx
>>> export_onnx(load_pretrained(), "model.onnx")        # raises if ONNX Runtime disagrees with PyTorch

The graph has one input, ``image`` float32 (B,3,S,S) RGB in [0, 1] (the model normalises it inside, as in
PyTorch), and one output per key of the model's output dict (:mod:`handrecon.models.registry`), named after
the key, in the fixed order of :data:`OUTPUT_ORDER` followed by any other keys sorted by name. The batch axis
is dynamic; ``S`` is fixed. The model's name, preset, input size and output keys are stored in the ONNX
metadata (``handrecon.*`` keys) so :class:`handrecon.predict.Predictor` can run the file alone.

Exporter: by default PyTorch's ``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``, the
maintained one), default opset 18 (17 also works). The TorchScript exporter (``dynamo=False``,
``exporter="torchscript"``) also exports these models correctly with torch 2.13 (grid_sample with border
padding, index_select, einsum, pixel_unshuffle, interpolate) and is about 20x faster to run, but PyTorch has
deprecated it; it is also the fallback when the dynamo exporter raises. Every export is checked either way
(``onnx.checker`` and :func:`verify_onnx`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handrecon.fileio import atomic_path

__all__ = ["export_onnx", "verify_onnx", "onnx_metadata", "onnx_session", "OUTPUT_ORDER", "TRAINING_OUTPUTS",
           "DEFAULT_OPSET", "EXPORT_REVISION", "EXPORTERS", "PARITY_TOLERANCE"]

#: Outputs first in this order (those the model has), then any other keys sorted by name.
OUTPUT_ORDER = ("vertices", "keypoints", "keypoints_2d", "silhouette", "heatmaps")
#: Outputs only a loss term reads (``vertices_canonical``: ``vertices`` before the global rotation); not exported.
TRAINING_OUTPUTS = ("vertices_canonical",)
DEFAULT_OPSET = 18
#: Bumped whenever the exported graph of a model changes (new re-formulations), so cached exports are redone.
EXPORT_REVISION = 2
EXPORTERS = ("dynamo", "torchscript")
#: Largest ONNX-vs-PyTorch difference accepted: metres for vertices and keypoints, pixels for keypoints_2d.
PARITY_TOLERANCE = {"vertices": 5e-4, "keypoints": 5e-4, "keypoints_2d": 0.5}


class _Flat(nn.Module):
    """The model with its output dict flattened into a tuple in a fixed key order (ONNX outputs are a list)."""

    def __init__(self, model: nn.Module, keys: list[str]):
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, image):
        out = self.model(image)
        return tuple(out[k] for k in self.keys)


def _input_size(model: nn.Module) -> int:
    S = getattr(model, "input_size", None) or getattr(getattr(model, "config", None), "input_size", None)
    if S is None:
        raise ValueError("model has no input_size (nor config.input_size); cannot build its input")
    return int(S)


def _model_name(model: nn.Module) -> str:
    return str(getattr(model, "pretrained_name", None) or getattr(model, "preset", None) or type(model).__name__)


def _output_keys(out: dict) -> list[str]:
    if not isinstance(out, dict) or "vertices" not in out:
        raise ValueError("the model must return a dict with at least 'vertices'")
    keys = [k for k in OUTPUT_ORDER if isinstance(out.get(k), torch.Tensor)]
    keys += sorted(k for k, v in out.items()
                   if k not in OUTPUT_ORDER + TRAINING_OUTPUTS and isinstance(v, torch.Tensor))
    return keys


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress lines and its 'torchvision is not installed' warnings."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_metadata(path) -> dict:
    """The ``handrecon.*`` metadata of an exported file: ``model``, ``preset``, ``input_size`` (int),
    ``outputs`` (list), ``opset`` (int)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key[len("handrecon."):]: p.value for p in proto.metadata_props if p.key.startswith("handrecon.")}
    for key in ("input_size", "opset"):
        if key in meta:
            meta[key] = int(meta[key])
    if "outputs" in meta:
        meta["outputs"] = json.loads(meta["outputs"])
    return meta


def onnx_session(path, num_threads: int | None = None, device="cpu"):
    """An ONNX Runtime session for an exported model, set up as handrecon times and runs it: ``num_threads``
    intra-op threads (None = ONNX Runtime's default), sequential execution, the CPU provider (CUDA first when
    ``device`` is a CUDA device and the installed ONNX Runtime has it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


def _regressor():
    from handrecon.hand import load_hand_model

    return load_hand_model("open").keypoint_regressor.detach().double().numpy()


def verify_onnx(model: nn.Module, path, batch_size: int = 2, seed: int = 0, tolerance: dict | None = None) -> dict:
    """Run the ONNX file with ONNX Runtime and ``model`` with PyTorch on the same random batch (uniform RGB in
    [0, 1]); return {output key: max |difference|} (``keypoints`` regressed from the vertices when the model has
    none) and raise ValueError when vertices or keypoints differ by more than 0.5 mm or ``keypoints_2d`` by
    more than 0.5 px (:data:`PARITY_TOLERANCE`)."""
    tol = dict(PARITY_TOLERANCE, **(tolerance or {}))
    S = _input_size(model)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 3, S, S, generator=g)
    with torch.inference_mode():
        out = model(x)
        ref = {k: out[k].detach().cpu().double().numpy() for k in _output_keys(out)}
    session = onnx_session(path, max(1, torch.get_num_threads()))
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, (np.asarray(a, np.float64) for a in session.run(None, {"image": x.numpy()}))))
    missing = sorted(set(ref) - set(got))
    if missing:
        raise ValueError(f"{path}: the ONNX graph lacks outputs {missing}")
    diff = {k: float(np.abs(got[k] - ref[k]).max()) if ref[k].size else 0.0 for k in ref}
    if "keypoints" not in ref:
        R = _regressor()
        diff["keypoints"] = float(np.abs(R @ got["vertices"] - R @ ref["vertices"]).max())
    bad = {k: d for k, d in diff.items() if k in tol and not d <= tol[k]}
    if bad:
        text = ", ".join(f"{k} by {d:.3g} (limit {tol[k]:g} {'px' if k == 'keypoints_2d' else 'm'})"
                         for k, d in bad.items())
        raise ValueError(f"ONNX export of {_model_name(model)!r} disagrees with PyTorch: {text}")
    return diff


def _export(flat, example, keys, opset, dynamic_batch, exporter, name):
    """(ModelProto, exporter used)."""
    import onnx

    errors = []
    for kind in ((exporter, "torchscript") if exporter == "dynamo" else (exporter,)):
        try:
            with _quiet_exporter():
                if kind == "dynamo":
                    dynamic = {"image": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
                    program = torch.onnx.export(flat, (example,), None, input_names=["image"], output_names=keys,
                                                opset_version=opset, dynamo=True, dynamic_shapes=dynamic,
                                                external_data=False, verbose=False)
                    return program.model_proto, "torch.onnx.export(dynamo=True)"
                buffer = io.BytesIO()
                axes = {n: {0: "batch"} for n in ["image", *keys]} if dynamic_batch else None
                torch.onnx.export(flat, (example,), buffer, input_names=["image"], output_names=keys,
                                  opset_version=opset, dynamo=False, dynamic_axes=axes, verbose=False)
                return onnx.load_from_string(buffer.getvalue()), "torch.onnx.export(dynamo=False)"
        except Exception as exc:  # noqa: BLE001 - the exporters raise many kinds; one clear error for users
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            errors.append(f"{kind}: {type(exc).__name__}: {first}")
    raise ValueError(f"ONNX export of {name!r} failed ({'; '.join(errors)})")


def export_onnx(model: nn.Module, path, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
                verify: bool = True, exporter: str = "dynamo") -> Path:
    """Export ``model`` (an ``nn.Module`` following the model interface of :mod:`handrecon.models.registry`)
    to the ONNX file ``path``.

    Args:
        model: the model; exported in eval mode on the CPU (its mode and device are restored afterwards).
        path: output file (``.onnx``); written to a temporary name beside it and renamed when checked.
        opset: ONNX opset (18 by default; the exporter converts to others when it can).
        dynamic_batch: a dynamic batch axis (else the batch size is fixed to 1).
        verify: check the graph (``onnx.checker``) and its outputs against PyTorch (:func:`verify_onnx`).
        exporter: ``"dynamo"`` (default; falls back to the TorchScript exporter if it raises) or
            ``"torchscript"``. The one used is stored in the metadata (``handrecon.exporter``).

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: the model does not fit the interface, the export fails, or ONNX Runtime disagrees with
            PyTorch beyond :data:`PARITY_TOLERANCE`.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        opset = int(opset)
    except (TypeError, ValueError):
        raise ValueError(f"opset must be an integer, got {opset!r}") from None
    if not 7 <= opset <= 30:
        raise ValueError(f"opset must be between 7 and 30, got {opset}")
    path = Path(path)
    S = _input_size(model)
    was_training = model.training
    params = list(model.parameters()) + list(model.buffers())
    device = params[0].device if params else torch.device("cpu")
    model.eval().cpu()
    try:
        example = torch.rand(2 if dynamic_batch else 1, 3, S, S, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            keys = _output_keys(model(example))
        flat = _Flat(model, keys).eval()
        proto, used = _export(flat, example, keys, opset, dynamic_batch, exporter, _model_name(model))
        meta = {"model": _model_name(model), "preset": str(getattr(model, "preset", "")), "input_size": str(S),
                "outputs": json.dumps(keys), "opset": str(opset), "exporter": used,
                "torch": torch.__version__}
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = f"handrecon.{key}", value
        with atomic_path(path, suffix=".onnx") as tmp:
            onnx.save_model(proto, str(tmp))
            if verify:
                onnx.checker.check_model(str(tmp))
                verify_onnx(model, tmp, batch_size=3 if dynamic_batch else 1)
    finally:
        model.train(was_training).to(device)
    return path
