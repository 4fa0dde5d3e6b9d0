"""The training objective: which loss terms apply to a model, computed on a batch; validation metrics.

A term of ``config.loss`` is active when its weight is > 0 and the model outputs what it needs:

==================  ==============================================  ==========================================
term                model output                                    label (valid where)
==================  ==============================================  ==========================================
``mesh``            ``vertices``, ``vertices_l1``.. per weight      ``vertices_rel``, ``vertices_l1``..
                                                                    (``has_vertices``)
``keypoint_3d``     ``keypoints``, else ``vertices``                ``keypoints_rel`` (``has_keypoints_3d``);
                    (keypoints regressed with the hand's regressor)
``keypoint_2d``     ``keypoints_2d`` (input pixels)                 ``keypoints_2d`` (normalised; the model's
                                                                    pixels are normalised before the loss)
``heatmap``         ``heatmaps`` (logits), plus every               ``heatmaps`` (``has_keypoints_2d``)
                    ``stack{k}_heatmaps`` (intermediate stacks)
``silhouette``      ``silhouette`` (logits), plus every             ``silhouette`` (``has_mask``)
                    ``stack{k}_silhouette``
``normal``/``edge`` ``vertices``                                    ``vertices_rel`` (``has_vertices``)
``consistency_2d``  ``keypoints_2d`` of two views                   ``affine_rel`` (normalised coordinates)
``consistency_3d``  ``vertices`` of two views                       ``rotation_rel``
``rotation``        ``global_rotation`` (B,3,3)                     ``pose[:, 0]`` as a matrix (``has_pose``)
``canonical_mesh``  ``vertices_canonical`` (the mesh before the     ``vertices_rel`` turned back by ``pose[:, 0]``
                    global rotation)                                (``has_vertices`` and ``has_pose``)
==================  ==============================================  ==========================================

Model outputs follow :mod:`handrecon.models.registry` (``vertices`` root-relative metres, ``keypoints_2d`` in
input pixels); labels follow :mod:`handrecon.data.targets` (``vertices_rel``, normalised ``keypoints_2d``).
"""

from __future__ import annotations

import numpy as np
import torch

from handrecon import losses
from handrecon.hand.lbs import axis_angle_to_matrix
from handrecon.train.config import LOSS_TERMS, LossConfig

__all__ = ["Objective", "ValidationAccumulator", "NEEDS"]

#: Model outputs each term needs (any one of them for keypoint_3d).
NEEDS = {
    "mesh": ("vertices",),
    "keypoint_3d": ("keypoints", "vertices"),
    "keypoint_2d": ("keypoints_2d",),
    "heatmap": ("heatmaps",),
    "silhouette": ("silhouette",),
    "normal": ("vertices",),
    "edge": ("vertices",),
    "consistency_2d": ("keypoints_2d",),
    "consistency_3d": ("vertices",),
    "rotation": ("global_rotation",),
    "canonical_mesh": ("vertices_canonical",),
}


def _stack_keys(keys, name: str) -> list[str]:
    """``name`` and the intermediate stacks' ``stack{k}_name`` among ``keys`` (CMR supervises every stack)."""
    stacks = sorted(k for k in keys if k.startswith("stack") and k.endswith(f"_{name}")
                    and k[len("stack"):-len(name) - 1].isdigit())
    return ([name] if name in keys else []) + stacks


def _level_key(level: int) -> str:
    """Model output key of mesh level ``level``."""
    return "vertices" if level == 0 else f"vertices_l{level}"


def _label_key(level: int) -> str:
    """Label key of mesh level ``level``."""
    return "vertices_rel" if level == 0 else f"vertices_l{level}"


def normalized_keypoints_2d(out: dict, size: int) -> torch.Tensor:
    """The model's ``keypoints_2d`` (input pixels) as normalised crop coordinates ``(u + 0.5) / size``."""
    return (out["keypoints_2d"] + 0.5) / size


class Objective:
    """Loss terms of ``config`` that apply to a model with outputs ``output_keys``.

    Attributes:
        weights: {term: weight} of the active terms (for :func:`handrecon.losses.total_loss`).
        mesh_levels: [(level, weight)] of the mesh levels in the ``mesh`` term.
        skipped: terms with a weight > 0 that the model cannot feed (reported once by the trainer).
        used_outputs: model outputs that feed some term.
    """

    def __init__(self, config: LossConfig, output_keys, hand, two_view: bool = False):
        keys = set(output_keys)
        self.mesh_levels = [(lv, float(w)) for lv, w in enumerate(config.mesh) if w > 0 and _level_key(lv) in keys]
        self.weights: dict[str, float] = {}
        self.skipped: list[str] = []
        self.used_outputs: set[str] = set()
        for term in LOSS_TERMS:
            w = max(config.mesh) if term == "mesh" else float(getattr(config, term))
            if w <= 0:
                continue
            if term == "mesh":
                ok = bool(self.mesh_levels)
                missing = [_level_key(lv) for lv, w in enumerate(config.mesh) if w > 0 and _level_key(lv) not in keys]
                if ok and missing:
                    self.skipped.append(f"mesh levels {missing}")
                if ok:
                    self.used_outputs.update(_level_key(lv) for lv, _ in self.mesh_levels)
            else:
                present = [k for k in NEEDS[term] if k in keys]
                ok = bool(present) and (two_view or not term.startswith("consistency"))
                if ok:
                    self.used_outputs.add(present[0])
                    if term in ("heatmap", "silhouette"):
                        self.used_outputs.update(_stack_keys(keys, present[0]))
            if ok:
                self.weights[term] = 1.0 if term == "mesh" else w
            else:
                self.skipped.append(term)
        self.faces = hand.faces.to(torch.long)
        self.regressor = hand.keypoint_regressor.to(torch.float32)

    def to(self, device) -> "Objective":
        self.faces = self.faces.to(device)
        self.regressor = self.regressor.to(device)
        return self

    @property
    def max_level(self) -> int:
        return max((lv for lv, _ in self.mesh_levels), default=0)

    def keypoints(self, out: dict) -> torch.Tensor:
        """Root-relative 3D keypoints of a prediction: ``keypoints`` or regressed from ``vertices``."""
        if "keypoints" in out:
            return out["keypoints"]
        return losses.regress_keypoints(out["vertices"], self.regressor)

    def __call__(self, out: dict, batch: dict, pairs: tuple | None = None, terms=None) -> dict:
        """{term: scalar} for the active terms (restricted to ``terms`` if given).

        ``out`` and ``batch`` are single-view (B, ...) tensors; ``pairs`` = (out_view1, out_view2, batch_pair)
        for the consistency terms of two-view batches.
        """
        t: dict[str, torch.Tensor] = {}
        want = self.weights if terms is None else [k for k in self.weights if k in terms]
        rotations: dict[torch.dtype, torch.Tensor] = {}

        def labelled_rotation(dtype: torch.dtype) -> torch.Tensor:
            """``pose[:, 0]`` as (B,3,3) matrices, built once for the terms that use it."""
            if dtype not in rotations:
                rotations[dtype] = axis_angle_to_matrix(batch["pose"][:, 0].to(dtype))
            return rotations[dtype]

        for term in want:
            if term == "mesh":
                preds = [out[_level_key(lv)] for lv, _ in self.mesh_levels]
                targets = [batch[_label_key(lv)] for lv, _ in self.mesh_levels]
                t[term] = losses.multilevel_mesh_l1(preds, targets, [w for _, w in self.mesh_levels],
                                                    valid=batch["has_vertices"])
            elif term == "keypoint_3d":
                if "keypoints" in out:
                    t[term] = losses.keypoint_l1(out["keypoints"], batch["keypoints_rel"],
                                                 valid=batch["has_keypoints_3d"])
                else:
                    t[term] = losses.keypoint_3d_l1(out["vertices"], batch["keypoints_rel"], self.regressor,
                                                    valid=batch["has_keypoints_3d"])
            elif term == "keypoint_2d":
                size = batch["image"].shape[-1]
                t[term] = losses.keypoint_2d_l1(normalized_keypoints_2d(out, size), batch["keypoints_2d"],
                                                valid=batch["has_keypoints_2d"])
            elif term == "heatmap":
                t[term] = sum(losses.heatmap_bce(out[k], batch["heatmaps"], valid=batch["has_keypoints_2d"])
                              for k in _stack_keys(out, "heatmaps"))
            elif term == "silhouette":
                t[term] = sum(losses.silhouette_bce(out[k], batch["silhouette"], valid=batch["has_mask"])
                              for k in _stack_keys(out, "silhouette"))
            elif term == "normal":
                t[term] = losses.normal_loss(out["vertices"], batch["vertices_rel"], self.faces,
                                             valid=batch["has_vertices"])
            elif term == "edge":
                t[term] = losses.edge_length_loss(out["vertices"], batch["vertices_rel"], self.faces,
                                                  valid=batch["has_vertices"])
            elif term == "consistency_2d" and pairs is not None:
                o1, o2, pb = pairs
                size = batch["image"].shape[-1]
                t[term] = losses.consistency_2d(normalized_keypoints_2d(o1, size), normalized_keypoints_2d(o2, size),
                                                pb["affine_rel"])
            elif term == "rotation":
                target = labelled_rotation(out["global_rotation"].dtype)
                t[term] = losses.rotation_l1(out["global_rotation"], target, valid=batch["has_pose"])
            elif term == "canonical_mesh":
                # vertices = V_c R^T, so the labelled mesh in the canonical frame is vertices_rel R
                pred = out["vertices_canonical"]
                target = batch["vertices_rel"].to(pred.dtype) @ labelled_rotation(pred.dtype)
                t[term] = losses.mesh_l1(pred, target, valid=batch["has_vertices"] * batch["has_pose"])
            elif term == "consistency_3d" and pairs is not None:
                o1, o2, pb = pairs
                t[term] = losses.consistency_3d(o1["vertices"], o2["vertices"], pb["rotation_rel"])
        return t


class ValidationAccumulator:
    """Per-sample validation errors gathered batch by batch; :meth:`summary` gives means.

    Metrics (3D in millimetres on root-relative predictions; samples without the label are left out):
    ``pa_mpjpe_mm``, ``pa_mpvpe_mm`` (Procrustes-aligned, :mod:`handrecon.metrics`), ``mpjpe_mm`` and
    ``mpvpe_mm`` (after moving the predicted wrist onto the labelled one), ``kp2d_px`` (2D keypoint error
    in crop pixels) and ``loss`` (the weighted single-view loss terms).
    """

    def __init__(self, input_size: int):
        self.input_size = int(input_size)
        self.values: dict[str, list[np.ndarray]] = {}
        self.loss_sum = 0.0
        self.loss_count = 0
        self.count = 0

    def _add(self, name: str, values) -> None:
        self.values.setdefault(name, []).append(np.asarray(values, np.float64).reshape(-1))

    def add(self, out: dict, batch: dict, objective: Objective, loss: float | None = None) -> None:
        from handrecon import metrics

        B = batch["image"].shape[0]
        self.count += B
        if loss is not None:
            self.loss_sum += loss * B
            self.loss_count += B
        if "vertices" in out:
            pred_kp = objective.keypoints(out).detach().double().cpu()
            pred_v = out["vertices"].detach().double().cpu()
            gt_kp = batch["keypoints_rel"].double().cpu()
            gt_v = batch["vertices_rel"].double().cpu()
            shift = (pred_kp[:, :1] - gt_kp[:, :1])
            has_kp = batch["has_keypoints_3d"].cpu().numpy() > 0
            has_v = batch["has_vertices"].cpu().numpy() > 0
            if has_kp.any():
                self._add("pa_mpjpe_mm", 1000 * metrics.pa_mpjpe(pred_kp[has_kp], gt_kp[has_kp]))
                self._add("mpjpe_mm", 1000 * metrics.mpjpe((pred_kp - shift)[has_kp], gt_kp[has_kp]))
            if has_v.any():
                self._add("pa_mpvpe_mm", 1000 * metrics.pa_mpvpe(pred_v[has_v], gt_v[has_v]))
                if has_kp.any():
                    both = has_v & has_kp
                    if both.any():
                        self._add("mpvpe_mm", 1000 * metrics.mpvpe((pred_v - shift)[both], gt_v[both]))
        if "keypoints_2d" in out:
            has_2d = batch["has_keypoints_2d"].cpu().numpy() > 0
            if has_2d.any():
                pred = normalized_keypoints_2d(out, self.input_size).detach().double().cpu()
                d = pred - batch["keypoints_2d"].double().cpu()
                err = torch.linalg.vector_norm(d, dim=-1).mean(-1) * self.input_size
                self._add("kp2d_px", err.numpy()[has_2d])

    def summary(self) -> dict[str, float]:
        out = {name: float(np.concatenate(v).mean()) for name, v in self.values.items()}
        if self.loss_count:
            out["loss"] = self.loss_sum / self.loss_count
        out["samples"] = float(self.count)
        return out
