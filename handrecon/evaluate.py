"""Evaluate a trained model on a dataset in the FreiHAND layout, the way the FreiHAND benchmark scores it.

>>> from handrecon.evaluate import evaluate
>>> scores = evaluate("runs/tiny/model", "data/synth_eval")           # -> runs/tiny/eval_evaluation/
>>> scores["pa_mpjpe_mm"], scores["f5"], scores["root_source"]

For every sample (in dataset order, every sample predicted; a sample that fails to load stops the run with
its index, since a benchmark submission needs all of them):

1. The deterministic evaluation crop (:class:`handrecon.data.TrainingTransform` with ``train=False``) at the
   model's input size ``S``; it gives the crop image, ``affine`` (source pixels -> crop pixels) and
   ``rotation`` ``R`` (the crop camera is ``R`` x the source camera).
2. The model's root-relative vertices (and keypoints, else regressed from the vertices with the hand's
   ``keypoint_regressor``) are in the crop camera frame: they are rotated back with ``R^T``
   (``p_source = R^T p_crop``, i.e. ``rows @ R``).
3. The camera-space root: :func:`handrecon.registration.register_root` (when that module exists and the model
   predicts 2D keypoints) from the predicted 2D keypoints mapped back to source pixels
   (``u_crop = x S - 0.5``, then the inverse affine), the source ``K`` and, when the model predicts one, the
   silhouette warped back to source pixels. Otherwise (or with ``root="gt"``) the ground-truth root is
   added back, and ``root_source`` says ``"ground_truth"``: the camera-space (CS) numbers then measure the
   root-relative mesh only.
4. Left hands (mirrored by the reader) are un-mirrored for ``pred.json``, so predictions are in the frame of
   the dataset's own label files. Scores do not depend on the mirror (it is an isometry).

Files written into ``out`` (default ``<weights folder>/eval_<split>/``), each atomically:

- ``scores.json``: see :func:`evaluate`.
- ``pred.json``: the official FreiHAND submission ``[xyz_list, verts_list]`` (N x 21 x 3, N x 778 x 3; metres,
  camera space, 7 decimals).
- ``per_sample.csv``: ``index, left, cs_mpjpe_mm, pa_mpjpe_mm, cs_mpvpe_mm, pa_mpvpe_mm, f5, f15, pa_f5,
  pa_f15, root_error_mm, kp2d_error_px`` (empty cells for what the data cannot score).
- ``pck_joints.png``, ``pck_vertices.png``: PCK over 0-50 mm, aligned and unaligned, AUC in the legend.

A split without 3D labels (the real FreiHAND evaluation images without the released annotations) gets
``pred.json`` only (plus a ``scores.json`` that says so); scores need the annotations.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from handrecon import metrics
from handrecon.fileio import atomic_path

__all__ = ["evaluate", "eval_transform", "EvaluationError", "find_register_root", "format_root_table", "read_pred_json",
           "ROOT_CHOICES", "ROOT_METHODS", "ROOT_TABLE_ROWS", "HEADLINE"]

#: Accepted values of ``evaluate(root=...)``.
ROOT_CHOICES = ("auto", "gt", "registration")
#: Accepted values of ``evaluate(root_method=...)``: how the registration finds the root (CMR's Table 4 rows).
ROOT_METHODS = ("adaptive", "2d", "1d", "pnp")
#: The rows of ``evaluate(root_table=True)``, CMR's Table 4 in order: (method, number of axes or None, label).
#: ``"gt"`` is the ground-truth root (the root-relative mesh alone); 1D and adaptive rows need a silhouette.
ROOT_TABLE_ROWS = (("gt", None, "ground-truth root"), ("pnp", None, "PnP (OpenCV)"), ("2d", None, "2D"),
                   ("1d", 2, "1D, A = 2"), ("1d", 12, "1D, A = 12"), ("adaptive", 2, "adaptive 2D+1D, A = 2"),
                   ("adaptive", 12, "adaptive 2D+1D, A = 12"))

#: (key, label, unit) of the numbers the command line prints.
HEADLINE = (
    ("pa_mpjpe_mm", "PA-MPJPE", "mm"),
    ("pa_mpvpe_mm", "PA-MPVPE", "mm"),
    ("f5", "F@5mm", ""),
    ("f15", "F@15mm", ""),
    ("cs_mpjpe_mm", "CS-MPJPE", "mm"),
)

_PRED_DECIMALS = 7  # pred.json: 0.1 micrometre


class EvaluationError(RuntimeError):
    """A sample could not be loaded or predicted (the message names its index)."""


def find_register_root():
    """``handrecon.registration.register_root`` if that module exists, else None (errors inside it propagate)."""
    try:
        module = importlib.import_module("handrecon.registration")
    except ModuleNotFoundError as exc:
        if exc.name == "handrecon.registration":
            return None
        raise
    return getattr(module, "register_root", None)


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------
class _EvalItems(Dataset):
    """Dataset sample -> the crop tensors for the model plus the source-frame labels needed for scoring."""

    def __init__(self, dataset, transform, where: str):
        self.dataset = dataset
        self.transform = transform
        self.where = where

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        try:
            sample = self.dataset[i]
            crop = self.transform(sample)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear error with the index
            raise EvaluationError(f"sample {i} of {self.where} could not be loaded ({type(exc).__name__}: {exc}); "
                                  "every sample must be predicted for the benchmark") from exc
        f64 = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
        H, W = sample["image"].shape[:2]
        sil = crop.get("silhouette")
        item = {
            "image": crop["image"],
            "affine": f64(crop["affine"]),
            "rotation": f64(crop["rotation"]),
            "crop_mask": sil[0].float() if isinstance(sil, torch.Tensor) and sil.ndim == 3 else torch.zeros(0),
            "K": f64(sample["K"]),
            "keypoints": f64(sample["keypoints"]),
            "vertices": f64(sample["vertices"]),
            "root": f64(sample["root"]),
            "keypoints_2d": f64(sample["keypoints_2d"]),
            "left": torch.tensor(bool(sample["left"])),
            "index": torch.tensor(i, dtype=torch.int64),
            "image_size": torch.tensor([H, W], dtype=torch.int64),
        }
        for flag in ("has_keypoints_3d", "has_vertices", "has_root", "has_keypoints_2d", "has_mask"):
            item[flag] = torch.tensor(bool(sample[flag]))
        return item


def _collate(items: list[dict]) -> dict:
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key == "crop_mask" and len({tuple(v.shape) for v in values}) > 1:
            out[key] = values  # masks of differing sizes (custom transforms): kept as a list
        else:
            out[key] = torch.stack(values)
    return out


# ----------------------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------------------
def _crop_to_source_2d(crop_px: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """(B,N,2) crop pixels -> (B,N,2) source-image pixels (inverse of the crop affine)."""
    from handrecon.camera import apply_affine, invert_affine

    inv = torch.as_tensor(invert_affine(affine.numpy()))
    return apply_affine(crop_px.double(), inv)


def _register_batch(register_root, verts, kps, uv, batch, sil_prob, S) -> np.ndarray:
    """Roots (B,3) of a batch; the predicted silhouette (if any) is warped back to source pixels first. Images
    of differing sizes in one batch are registered one by one (their silhouettes do not stack)."""
    K = batch["K"]
    if sil_prob is None:
        return _register(register_root, verts, kps, uv, K, None)
    from handrecon.camera import uncrop_map

    sil = [uncrop_map(sil_prob[b].numpy(), batch["affine"][b].numpy(), S, batch["image_size"][b].numpy())
           for b in range(len(verts))]
    if len({m.shape for m in sil}) == 1:
        return _register(register_root, verts, kps, uv, K, sil)
    return np.concatenate([_register(register_root, verts[b:b + 1], kps[b:b + 1], uv[b:b + 1], K[b:b + 1], sil[b:b + 1])
                           for b in range(len(verts))])


def _register(register_root, verts, kps, uv, K, sil_source):
    """Call ``register_root`` on a batch (float64 CPU tensors); returns (B,3) float64 numpy roots."""
    kwargs = {}
    if sil_source is not None:
        kwargs["silhouette"] = torch.as_tensor(np.stack(sil_source))
    result = register_root(verts, kps, uv, K, **kwargs)
    root = getattr(result, "root", result)
    if isinstance(root, torch.Tensor):
        root = root.detach().cpu().double().numpy()
    root = np.asarray(root, np.float64).reshape(len(verts), 3)
    if not np.all(np.isfinite(root)):
        raise EvaluationError("register_root returned a non-finite root")
    return root


# ----------------------------------------------------------------------------------------------------------
# the evaluation
# ----------------------------------------------------------------------------------------------------------
def _resolve_model(weights, device):
    from handrecon.models import load_model

    if isinstance(weights, nn.Module):
        model, where = weights, None
    else:
        path = Path(weights)
        model, where = load_model(path, map_location="cpu"), path
    config = getattr(model, "config", None)
    size = getattr(config, "input_size", None)
    if size is None:
        raise ValueError("the model has no config.input_size; cannot build its evaluation crop")
    return model.to(device).eval(), int(size), where


def _default_out(where, split: str) -> Path:
    if where is None:
        raise ValueError("out= is required when evaluating a model object (there is no weights folder)")
    return Path(where).parent / f"eval_{split}"


def _check_output(out: dict, B: int) -> None:
    v = out.get("vertices") if isinstance(out, dict) else None
    if not isinstance(v, torch.Tensor) or tuple(v.shape[1:]) != (778, 3) or v.shape[0] != B:
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"the model must return a dict with 'vertices' of shape ({B}, 778, 3), got {got}")
    for key, shape in (("keypoints", (21, 3)), ("keypoints_2d", (21, 2))):
        t = out.get(key)
        if t is not None and tuple(t.shape) != (B, *shape):
            raise ValueError(f"model output '{key}' must have shape ({B}, {shape[0]}, {shape[1]}), got {tuple(t.shape)}")


def evaluate(weights, data, split: str = "evaluation", out=None, batch_size: int = 32, num_workers: int = 0,
             device="cpu", root: str = "auto", *, root_method: str = "adaptive", num_axes: int = 12,
             crop: str = "auto", crop_scale: float = 1.3, root_table: bool = False, hand_model=None,
             transform=None, progress: bool = True) -> dict:
    """Predict every sample of ``data`` / ``split`` with a model and score it (see the module docstring).

    Args:
        weights: a saved model (``PATH`` of ``PATH.safetensors`` + ``PATH.json``, either file also accepted) or
            a model object (an ``nn.Module`` with ``config.input_size``; then ``out`` is required; it is moved
            to ``device`` and put back in its train/eval mode afterwards).
        data: folder of a dataset in the FreiHAND layout (real FreiHAND or ``handrecon synth`` output).
        split: ``"evaluation"`` or ``"training"``.
        out: output folder; default ``<weights folder>/eval_<split>/``.
        batch_size, num_workers: data loading (``num_workers`` processes; 0 = in this process).
        device: torch device for the model.
        root: ``"auto"`` (registration when available, else the ground-truth root), ``"gt"`` (always the
            ground-truth root) or ``"registration"`` (error if it is unavailable).
        root_method: how the registration finds the root (:data:`ROOT_METHODS`): ``"adaptive"`` 2D+1D
            (CMR Eq. 5), ``"2d"`` keypoints only, ``"1d"`` silhouette only (needs a silhouette head), ``"pnp"``
            (OpenCV); CMR's Table 4 rows.
        num_axes: directions of the 1D registration over 180 degrees (the paper's A; 12 by default).
        crop: the evaluation crop (:func:`handrecon.data.eval_crop`): ``"auto"`` (a square image without a
            dataset box is used whole, as FreiHAND's pre-cropped images are; else the box), ``"full"``, or
            ``"box"`` (the dataset's box, else the labelled keypoints' box, times ``crop_scale``: what a hand
            detector gives; use it for full-frame images such as ``handrecon synth`` output).
        crop_scale: growth of the box for ``crop="box"``.
        root_table: also place the predicted root-relative mesh by every root method of
            :data:`ROOT_TABLE_ROWS` (one forward pass; CMR's Table 4): adds ``root_table`` to the scores and
            writes ``root_table.md``.
        hand_model: passed to :class:`handrecon.data.FreiHAND` (your MANO model, to pose ``<split>_mano.json``
            when ``<split>_verts.json`` is absent); also its ``keypoint_regressor`` regresses keypoints
            (default: the bundled open hand's).
        transform: the crop (a callable ``sample -> dict`` with ``image``, ``affine``, ``rotation`` and
            optionally ``silhouette``, like :class:`handrecon.data.TrainingTransform`); default: the
            deterministic evaluation crop at the model's input size.
        progress: show a progress bar.

    Returns:
        The content of ``scores.json``. Metrics (None where the data or the model cannot give them):

        - every key of :func:`handrecon.metrics.freihand_scores`: ``cs_mpjpe_mm``, ``pa_mpjpe_mm``,
          ``cs_mpvpe_mm``, ``pa_mpvpe_mm``, their ``*_median_mm`` (millimetres); ``cs_auc_joints``,
          ``pa_auc_joints``, ``cs_auc_vertices``, ``pa_auc_vertices`` (PCK AUC 0-50 mm, [0, 1]);
          ``f5``, ``f15``, ``pa_f5``, ``pa_f15`` (F-scores at 5/15 mm, [0, 1]); ``num_samples``.
        - ``pa_auc_joints_20_50``: aligned-joint PCK AUC over 20-50 mm (the RHD/STB convention), [0, 1].
        - ``rr_mpjpe_mm``, ``rr_mpvpe_mm``: root-relative errors (both sets minus their own root), mm.
        - ``root_error_mm``: mean distance of the camera-space root to the ground truth, mm (0 when the
          ground-truth root was used).
        - ``kp2d_error_px``: mean 2D keypoint error in source-image pixels (all 21 keypoints);
          ``kp2d_auc_0_30px``: 2D PCK AUC over 0-30 px, [0, 1] (models that predict 2D keypoints).
        - ``silhouette_iou``: mean IoU of the predicted silhouette (probability >= 0.5) with the mask in the
          evaluation crop at input resolution (models that predict one, data with masks).

        And: ``scored`` (False without 3D labels), ``root_source`` (``"registration"`` |
        ``"ground_truth"``), ``keypoints_source`` (``"model"`` | ``"regressed"``), ``model`` (preset),
        ``input_size``, ``weights``, ``data``, ``split``, ``root_table`` (with ``root_table=True`` on labelled
        data: one dict per row of :data:`ROOT_TABLE_ROWS` the model can feed, with ``method``, ``num_axes``,
        ``label``, ``cs_mpjpe_mm``, ``cs_mpvpe_mm``, ``root_error_mm``), ``notes`` (sentences worth printing), ``files``
        (name -> path of every file written), ``handrecon_version``.

    Raises:
        FileNotFoundError: the weights or the data folder (or a required label file) is missing.
        ValueError: bad arguments, a malformed dataset, a model whose output does not fit, or ``root`` asking
            for what is not available.
        EvaluationError: a sample could not be loaded (the message names its index).
    """
    if root not in ROOT_CHOICES:
        raise ValueError(f"root must be one of {ROOT_CHOICES}, got {root!r}")
    if crop not in ("auto", "full", "box"):
        raise ValueError(f"crop must be 'auto', 'full' or 'box', got {crop!r}")
    if not float(crop_scale) > 0:
        raise ValueError(f"crop_scale must be positive, got {crop_scale}")
    if root_method not in ROOT_METHODS:
        raise ValueError(f"root_method must be one of {ROOT_METHODS}, got {root_method!r}")
    if int(num_axes) < 2:
        raise ValueError(f"num_axes must be >= 2, got {num_axes}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(num_workers) < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if not isinstance(weights, nn.Module):
        stem = Path(weights)
        stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
        if not stem.with_suffix(".safetensors").is_file():
            raise FileNotFoundError(f"model weights not found: '{stem.with_suffix('.safetensors')}' (a saved model "
                                    "is PATH.safetensors + PATH.json; pass PATH)")
    data_path = Path(data)
    if not data_path.is_dir():
        raise FileNotFoundError(f"data folder not found: '{data_path}' (expected a dataset in the FreiHAND layout)")

    was_training = weights.training if isinstance(weights, nn.Module) else False
    model, S, weights_path = _resolve_model(weights, device)
    try:
        return _run(model, S, weights_path, data_path, split, out, batch_size, num_workers, device, root, hand_model,
                    transform, progress, (root_method, int(num_axes)), (crop, float(crop_scale)), bool(root_table))
    finally:
        model.train(was_training)  # a model object passed in (e.g. by the trainer) gets its mode back


def eval_transform(input_size: int, crop: str = "auto", crop_scale: float = 1.3):
    """The deterministic evaluation crop at a model's ``input_size`` (what :func:`evaluate` uses by default): a
    :class:`handrecon.data.TrainingTransform` without augmentation or heatmaps, with the silhouette at input
    resolution and root-relative labels in the crop's camera frame (``keypoints_2d`` normalised to the crop).
    ``crop`` / ``crop_scale`` as in :func:`evaluate`."""
    from handrecon.data import Augmentation, TargetConfig, TrainingTransform

    augmentation = Augmentation(output_size=input_size, eval_crop=crop, eval_scale=crop_scale)
    return TrainingTransform(TargetConfig(input_size=input_size, train=False, heatmap_size=0,
                                          silhouette_size=input_size, levels=0, augmentation=augmentation))


def _run(model, S, weights_path, data_path, split, out, batch_size, num_workers, device, root, hand_model,
         transform, progress, method=("adaptive", 12), crop=("auto", 1.3), root_table=False) -> dict:
    from tqdm import tqdm

    from handrecon import __version__
    from handrecon.data import FreiHAND

    out_dir = Path(out) if out is not None else _default_out(weights_path, split)
    dataset = FreiHAND(data_path, split, hand_model=hand_model)
    if transform is None:
        transform = eval_transform(S, *crop)
    items = _EvalItems(dataset, transform, f"{data_path} ({split})")
    loader = DataLoader(items, batch_size=int(batch_size), shuffle=False, num_workers=int(num_workers),
                        collate_fn=_collate)
    if hand_model is None:
        from handrecon.hand import load_hand_model

        regressor = load_hand_model("open").keypoint_regressor
    else:
        regressor = hand_model.keypoint_regressor
    regressor = regressor.detach().double().cpu()
    register_root = find_register_root() if root in ("auto", "registration") else None
    if register_root is not None and method != ("adaptive", 12):
        register_root = _root_solver(*method)
    if root == "registration" and register_root is None:
        raise ValueError("root='registration' needs handrecon.registration.register_root, which is not available")

    N = len(items)
    # CMR's Table 4: every root method on the same predictions (None = the row cannot be fed: no 2D / no mask)
    table_roots = {row[:2]: np.zeros((N, 3)) for row in ROOT_TABLE_ROWS if row[0] != "gt"} if root_table else {}
    pred_xyz, pred_verts = np.zeros((N, 21, 3)), np.zeros((N, 778, 3))
    pred_root, pred_uv = np.zeros((N, 3)), np.full((N, 21, 2), np.nan)
    labels = {k: np.zeros(shape) for k, shape in (("keypoints", (N, 21, 3)), ("vertices", (N, 778, 3)),
                                                    ("root", (N, 3)), ("keypoints_2d", (N, 21, 2)))}
    flags = {k: np.zeros(N, bool) for k in ("has_keypoints_3d", "has_vertices", "has_root", "has_keypoints_2d",
                                            "has_mask", "left")}
    iou = np.full(N, np.nan)
    state = {"root_source": None, "keypoints_source": None, "has_2d": None, "has_sil": None}
    bar = tqdm(total=N, desc="evaluate", unit="img", disable=not progress, dynamic_ncols=True)
    seen = 0
    with torch.inference_mode():
        for batch in loader:
            idx = batch["index"].numpy()
            B = len(idx)
            if not np.array_equal(idx, np.arange(seen, seen + B)):
                raise EvaluationError(f"the data loader returned samples {idx.tolist()} out of order")
            seen += B
            for key in labels:
                labels[key][idx] = batch[key].numpy()
            for key in flags:
                flags[key][idx] = batch[key].numpy()

            output = model(batch["image"].to(device))
            _check_output(output, B)
            R = batch["rotation"]  # (B,3,3): crop = R source
            verts = output["vertices"].detach().double().cpu() @ R  # rows: p_source = R^T p_crop
            if output.get("keypoints") is not None:
                kps = output["keypoints"].detach().double().cpu() @ R
                state["keypoints_source"] = "model"
            else:
                kps = regressor @ verts
                state["keypoints_source"] = "regressed"
            uv = None
            if output.get("keypoints_2d") is not None:
                uv = _crop_to_source_2d(output["keypoints_2d"].detach().double().cpu(), batch["affine"])
                pred_uv[idx] = uv.numpy()
            state["has_2d"] = uv is not None
            sil_prob = None
            if output.get("silhouette") is not None:
                sil_prob = torch.sigmoid(output["silhouette"].detach().float().cpu())
                if sil_prob.ndim == 4:
                    sil_prob = sil_prob[:, 0]
                iou[idx] = _batch_iou(sil_prob, batch["crop_mask"], batch["has_mask"].numpy())
            state["has_sil"] = sil_prob is not None

            if state["root_source"] is None:
                state["root_source"] = _choose_root(root, register_root, uv is not None)
            if state["root_source"] == "registration":
                roots = _register_batch(register_root, verts, kps, uv, batch, sil_prob, S)
            else:
                if not flags["has_root"][idx].all():
                    bad = int(idx[~flags["has_root"][idx]][0])
                    raise ValueError(f"sample {bad} of {data_path} ({split}) has no ground-truth root, and the "
                                     "camera-space root cannot be registered; cannot place the mesh in camera space")
                roots = batch["root"].numpy()
            pred_root[idx] = roots
            for (name, axes), table in table_roots.items():
                if table is None:
                    continue
                if uv is None or (sil_prob is None and name in ("1d", "adaptive")):
                    table_roots[name, axes] = None
                    continue
                table[idx] = _register_batch(_root_solver(name, axes or 12), verts, kps, uv, batch, sil_prob, S)
            pred_verts[idx] = verts.numpy() + roots[:, None]
            pred_xyz[idx] = kps.numpy() + roots[:, None]
            bar.update(B)
    bar.close()
    if seen != N:
        raise EvaluationError(f"predicted {seen} of {N} samples")

    notes = []
    if state["root_source"] == "ground_truth":
        why = ("root='gt' was asked for" if root == "gt" else
               "handrecon.registration is not available" if register_root is None else
               "the model predicts no 2D keypoints to register with")
        notes.append(f"camera-space root: GROUND TRUTH ({why}); CS-* numbers measure the root-relative mesh only")
    if state["keypoints_source"] == "regressed":
        notes.append("keypoints regressed from the predicted vertices (the model predicts none)")

    # pred.json in the frame of the dataset's label files (left hands un-mirrored).
    sign = np.where(flags["left"], -1.0, 1.0)[:, None, None]
    mirror = np.concatenate([sign, np.ones((N, 1, 2))], axis=-1)
    files = {}
    files["pred.json"] = _write_json(out_dir / "pred.json", [np.round(pred_xyz * mirror, _PRED_DECIMALS).tolist(),
                                                             np.round(pred_verts * mirror, _PRED_DECIMALS).tolist()],
                                     indent=None)
    info = {
        "crop": crop[0] if crop[0] != "box" else f"box x {crop[1]:g}",
        "root_source": state["root_source"],
        "root_method": (f"{method[0]}" + (f", {method[1]} axes" if method[0] in ("adaptive", "1d") else "")
                        if state["root_source"] == "registration" else None),
        "keypoints_source": state["keypoints_source"],
        "model": getattr(model, "preset", type(model).__name__),
        "input_size": S,
        "weights": None if weights_path is None else str(weights_path),
        "data": str(data_path),
        "split": split,
        "handrecon_version": __version__,
    }

    has3d = flags["has_keypoints_3d"]
    if not has3d.any():
        notes.append(f"{data_path} ({split}) has no 3D annotations: wrote pred.json only; scores need the "
                     "annotations (<split>_xyz.json and <split>_verts.json)")
        scores = {"scored": False, "num_samples": N, **info, "notes": notes}
        files["scores.json"] = str(out_dir / "scores.json")
        scores["files"] = files
        _write_json(out_dir / "scores.json", scores)
        return scores
    if not has3d.all():
        raise ValueError(f"{data_path} ({split}): {int((~has3d).sum())} of {N} samples have no 3D keypoints "
                         f"(first: {int(np.flatnonzero(~has3d)[0])}); a benchmark needs labels for all or none")

    gj, gv = labels["keypoints"], labels["vertices"]
    has_verts = bool(flags["has_vertices"].all())
    if has_verts:
        scores = metrics.freihand_scores(pred_xyz, pred_verts, gj, gv)
    else:
        notes.append("the data has no vertices: vertex metrics and F-scores are not computed")
        scores = metrics.freihand_scores(pred_xyz, pred_xyz, gj, gj)
        for key in list(scores):
            if "mpvpe" in key or "vertices" in key or key in ("f5", "f15", "pa_f5", "pa_f15"):
                scores[key] = None
    per = _per_sample(pred_xyz, pred_verts if has_verts else None, gj, gv if has_verts else None)
    pa_err_j = metrics.point_errors(metrics.procrustes_align(pred_xyz, gj), gj)
    scores["pa_auc_joints_20_50"] = metrics.pck_auc(pa_err_j, low=0.02, high=0.05, steps=100)
    rr_j = metrics.mpjpe(pred_xyz - pred_root[:, None], gj - labels["root"][:, None])
    scores["rr_mpjpe_mm"] = float(np.mean(rr_j)) * 1000.0
    scores["rr_mpvpe_mm"] = (float(np.mean(metrics.mpvpe(pred_verts - pred_root[:, None],
                                                         gv - labels["root"][:, None]))) * 1000.0
                             if has_verts else None)
    root_err = metrics.root_error(pred_root, labels["root"]) * 1000.0
    scores["root_error_mm"] = float(np.mean(root_err))
    per["root_error_mm"] = root_err
    has2d = flags["has_keypoints_2d"]
    if state["has_2d"] and has2d.any():
        err2d = np.sqrt(np.sum(np.square(pred_uv[has2d] - labels["keypoints_2d"][has2d]), axis=-1))  # (M,21) px
        scores["kp2d_error_px"] = float(np.mean(err2d))
        scores["kp2d_auc_0_30px"] = metrics.pck_auc_2d(err2d, 0.0, 30.0, 100)
        per["kp2d_error_px"] = np.full(N, np.nan)
        per["kp2d_error_px"][has2d] = err2d.mean(-1)
    else:
        scores["kp2d_error_px"] = scores["kp2d_auc_0_30px"] = None
    valid_iou = np.isfinite(iou)
    scores["silhouette_iou"] = float(np.mean(iou[valid_iou])) if state["has_sil"] and valid_iou.any() else None

    scores = {"scored": True, **scores, **info, "notes": notes}
    if root_table:
        rel_j, rel_v = pred_xyz - pred_root[:, None], pred_verts - pred_root[:, None]
        table_roots[("gt", None)] = labels["root"]
        rows = []
        for name, axes, label in ROOT_TABLE_ROWS:
            r = table_roots.get((name, axes))
            if r is None:
                continue
            rows.append({"method": name, "num_axes": axes, "label": label,
                         "cs_mpjpe_mm": float(np.mean(metrics.mpjpe(rel_j + r[:, None], gj))) * 1000.0,
                         "cs_mpvpe_mm": (float(np.mean(metrics.mpvpe(rel_v + r[:, None], gv))) * 1000.0
                                         if has_verts else None),
                         "root_error_mm": float(np.mean(metrics.root_error(r, labels["root"]))) * 1000.0})
        scores["root_table"] = rows
        files["root_table.md"] = _write_root_table(out_dir / "root_table.md", rows, info)
    files["per_sample.csv"] = _write_csv(out_dir / "per_sample.csv", per, flags["left"])
    files["pck_joints.png"] = _plot_pck(out_dir / "pck_joints.png", pred_xyz, gj, "joints (21)",
                                        scores["cs_auc_joints"], scores["pa_auc_joints"], state["root_source"])
    if has_verts:
        files["pck_vertices.png"] = _plot_pck(out_dir / "pck_vertices.png", pred_verts, gv, "vertices (778)",
                                              scores["cs_auc_vertices"], scores["pa_auc_vertices"],
                                              state["root_source"])
    files["scores.json"] = str(out_dir / "scores.json")
    scores["files"] = files
    _write_json(out_dir / "scores.json", scores)
    return scores


def read_pred_json(path) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N,21,3) and vertices (N,778,3), float64 metres, of a FreiHAND-format ``pred.json`` (the
    official submission ``[xyz_list, verts_list]`` that :func:`evaluate` writes). ValueError naming ``path``
    if it is missing, not JSON, or not of those shapes."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pred.json: no file {path}")
    try:
        content = json.loads(path.read_text())
        keypoints, vertices = (np.asarray(a, np.float64) for a in content)
    except (ValueError, TypeError) as exc:  # not JSON, not two entries, ragged lists
        raise ValueError(f"{path}: expected a pred.json [keypoints, vertices]; {exc}") from None
    for name, arr, width in (("keypoints", keypoints, 21), ("vertices", vertices, 778)):
        if arr.ndim != 3 or arr.shape[1:] != (width, 3):
            raise ValueError(f"{path}: expected {name} of shape (N, {width}, 3), got {arr.shape}")
    if len(keypoints) != len(vertices):
        raise ValueError(f"{path}: {len(keypoints)} keypoint sets but {len(vertices)} vertex sets")
    return keypoints, vertices


def format_root_table(rows: list[dict]) -> str:
    """The rows of ``scores["root_table"]`` as a Markdown table (millimetres)."""
    lines = ["| root | CS-MPJPE (mm) | CS-MPVPE (mm) | root error (mm) |", "|---|---|---|---|"]
    for r in rows:
        mpvpe = "n/a" if r["cs_mpvpe_mm"] is None else f"{r['cs_mpvpe_mm']:.1f}"
        lines.append(f"| {r['label']} | {r['cs_mpjpe_mm']:.1f} | {mpvpe} | {r['root_error_mm']:.1f} |")
    return "\n".join(lines)


def _write_root_table(path: Path, rows: list[dict], info: dict) -> str:
    head = (f"Root recovery (CMR Table 4) of model {info['model']!r} on {info['data']} ({info['split']}), "
            f"crop {info['crop']}: the same root-relative predictions placed by each root method.\n\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(head + format_root_table(rows) + "\n", encoding="utf-8")
    return str(path)


def _root_solver(method: str, num_axes: int):
    """A callable with ``register_root``'s signature that finds the root by ``method`` (see ROOT_METHODS)."""
    from handrecon import registration as reg

    def solve(vertices, keypoints, keypoints_2d, K, silhouette=None):
        if method == "adaptive":
            return reg.register_root(vertices, keypoints, keypoints_2d, K, silhouette=silhouette, num_axes=num_axes)
        if method == "2d":
            return reg.register_root_2d(keypoints, keypoints_2d, K)
        if method == "pnp":
            return reg.register_root_pnp(keypoints, keypoints_2d, K)
        if silhouette is None:
            raise ValueError("root_method='1d' needs a model that predicts a silhouette")
        return reg.register_root_1d(vertices, silhouette, K, num_axes=num_axes)

    return solve


def _choose_root(root: str, register_root, has_2d: bool) -> str:
    if root == "gt":
        return "ground_truth"
    if register_root is not None and has_2d:
        return "registration"
    if root == "registration":
        raise ValueError("root='registration' needs the model's 2D keypoints ('keypoints_2d'); this model "
                         "predicts none")
    return "ground_truth"


def _batch_iou(prob: torch.Tensor, masks, has_mask: np.ndarray) -> np.ndarray:
    """(B,s,s) probabilities vs crop masks (B,S,S) (or a list) -> (B,) IoU, NaN where there is no mask."""
    out = np.full(len(prob), np.nan)
    for b in range(len(prob)):
        mask = masks[b]
        if not has_mask[b] or mask.numel() == 0:
            continue
        p = prob[b]
        if p.shape != mask.shape:
            p = torch.nn.functional.interpolate(p[None, None], size=tuple(mask.shape), mode="bilinear",
                                                align_corners=False)[0, 0]
        out[b] = float(metrics.silhouette_iou(p.numpy() >= 0.5, mask.numpy() >= 0.5))
    return out


def _per_sample(pj, pv, gj, gv) -> dict:
    """Per-sample errors: mm for distances, [0, 1] for F-scores (None columns when there are no vertices)."""
    per = {
        "cs_mpjpe_mm": metrics.mpjpe(pj, gj) * 1000.0,
        "pa_mpjpe_mm": metrics.pa_mpjpe(pj, gj) * 1000.0,
    }
    if pv is None:
        for key in ("cs_mpvpe_mm", "pa_mpvpe_mm", "f5", "f15", "pa_f5", "pa_f15"):
            per[key] = None
        return per
    aligned = metrics.procrustes_align(pv, gv)
    per["cs_mpvpe_mm"] = metrics.mpvpe(pv, gv) * 1000.0
    per["pa_mpvpe_mm"] = metrics.mpvpe(aligned, gv) * 1000.0
    per["f5"] = metrics.f_score(pv, gv, 0.005)
    per["f15"] = metrics.f_score(pv, gv, 0.015)
    per["pa_f5"] = metrics.f_score(aligned, gv, 0.005)
    per["pa_f15"] = metrics.f_score(aligned, gv, 0.015)
    return per


# ----------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------
def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _write_json(path: Path, obj, indent: int | None = 2) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=indent, default=_json_default, allow_nan=False)
    return str(path)


_CSV_COLUMNS = ("cs_mpjpe_mm", "pa_mpjpe_mm", "cs_mpvpe_mm", "pa_mpvpe_mm", "f5", "f15", "pa_f5", "pa_f15",
                "root_error_mm", "kp2d_error_px")


def _write_csv(path: Path, per: dict, left: np.ndarray) -> str:
    def cell(value, i):
        if value is None:
            return ""
        v = float(value[i])
        return "" if not math.isfinite(v) else f"{v:.4f}"

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("index", "left", *_CSV_COLUMNS))
            for i in range(len(left)):
                writer.writerow((i, int(left[i]), *(cell(per.get(c), i) for c in _CSV_COLUMNS)))
    return str(path)


def _plot_pck(path: Path, pred, gt, what: str, auc_cs: float, auc_pa: float, root_source: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cs_label = "camera space" + (" (ground-truth root)" if root_source == "ground_truth" else "")
    for points, label, auc, style in ((metrics.procrustes_align(pred, gt), "Procrustes-aligned", auc_pa, "-"),
                                      (pred, cs_label, auc_cs, "--")):
        thresholds, pck = metrics.pck_curve(metrics.point_errors(points, gt), 0.0, 0.05, 100)
        ax.plot(thresholds * 1000.0, pck, style, label=f"{label}, AUC {auc:.3f}")
    ax.set_xlabel("threshold (mm)")
    ax.set_ylabel("PCK")
    ax.set_xlim(0, 50)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"3D PCK of {what}, {len(pred)} samples")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return str(path)
