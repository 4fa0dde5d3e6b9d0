"""Training losses of the four model families, as small pure functions on batched tensors.

Every term is a differentiable function of a prediction and a label that returns a scalar tensor. The terms
come from the papers' loss sections:

- CMR (Eq. 6): L1 mesh loss per hierarchy level (:func:`mesh_l1`, :func:`multilevel_mesh_l1`), L1 3D pose on
  keypoints regressed from the mesh (:func:`keypoint_3d_l1`), BCE 2D heatmaps (:func:`heatmap_bce`) and
  silhouette (:func:`silhouette_bce`), normal loss (:func:`normal_loss`), edge length loss
  (:func:`edge_length_loss`).
- MobRecon (Eqs. 10-11): L1 mesh, L1 2D pose (:func:`keypoint_2d_l1`), normal and edge losses, and the
  augmentation consistency losses (:func:`consistency_2d`, :func:`consistency_3d`).
- HAMR (Eq. 8): squared errors on 3D/2D keypoints (:func:`keypoint_mse`, :func:`keypoint_2d_mse`), MSE on
  stacked heatmaps (:func:`heatmap_mse`) and L1 between a rendered soft silhouette and the mask
  (:func:`silhouette_l1`).
- Ours: L1 on the global rotation of models that regress it (:func:`rotation_l1`).

Conventions (all terms):

- Units: 3D in metres (vertices, keypoints), so a mesh L1 of 0.005 is 5 mm per coordinate. 2D keypoints for
  :func:`keypoint_2d_l1` / :func:`keypoint_2d_mse` are expected normalised by the crop size (pixels / crop
  side, so in ``[0, 1]`` inside the crop); the functions themselves do not rescale. :func:`consistency_2d`
  takes pixels of the crop and optionally divides by ``crop_size``.
- Reduction: a mean. The elementwise error is averaged over coordinates (and pixels), then a weighted mean is
  taken over samples (and elements, where a per-element weight exists):
  ``loss = sum_{b,n} valid_b * weight_bn * e_bn / sum_{b,n} valid_b * weight_bn``. With ``valid=None`` and
  ``weight=None`` this is the plain mean over everything (``F.l1_loss(pred, target)`` for :func:`mesh_l1`).
- ``valid``: optional (B,) bool or non-negative float tensor, one weight per sample; a sample with weight 0
  (e.g. an RHD sample, which has no mesh) contributes nothing, and its label may hold anything, NaN included
  (it is replaced by 0 before use). When no sample (or element) has a positive weight the loss is an exact
  ``0`` still attached to the graph of the prediction (its gradient is 0, never NaN).
- ``weight``: where a per-element visibility exists (keypoints, heatmap channels), an optional (B, N) bool or
  non-negative float tensor, combined with ``valid`` by product.
- Wrong shapes raise ``ValueError`` naming the argument.

:func:`total_loss` makes the weighted sum of named terms and a dict of floats for logging.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "mesh_l1",
    "multilevel_mesh_l1",
    "keypoint_l1",
    "keypoint_mse",
    "keypoint_3d_l1",
    "regress_keypoints",
    "rotation_l1",
    "keypoint_2d_l1",
    "keypoint_2d_mse",
    "heatmap_bce",
    "heatmap_mse",
    "silhouette_bce",
    "silhouette_l1",
    "normal_loss",
    "edge_length_loss",
    "rotation_from_affine",
    "consistency_2d",
    "consistency_3d",
    "total_loss",
]


# ----------------------------------------------------------------------------------------------------------
# checks and the shared reduction
# ----------------------------------------------------------------------------------------------------------
def _shape(x) -> tuple:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_tensor(x, name: str, ndim: int, spec: str, last: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape {spec}, got {type(x).__name__}")
    if x.ndim != ndim or (last is not None and x.shape[-1] != last):
        raise ValueError(f"{name} must have shape {spec}, got {_shape(x)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {_shape(x)}")


def _check_same(x, name: str, ref: torch.Tensor, ref_name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.shape != ref.shape:
        raise ValueError(f"{name} must have the same shape as {ref_name} {_shape(ref)}, got {_shape(x)}")


def _check_valid(valid, batch: int, name: str = "valid") -> None:
    if valid is None:
        return
    if not isinstance(valid, torch.Tensor) or valid.shape != (batch,):
        raise ValueError(f"{name} must have shape (B,) = ({batch},), got {_shape(valid)}")


def _check_weight(weight, batch: int, num: int, name: str = "weight") -> None:
    if weight is None:
        return
    if not isinstance(weight, torch.Tensor) or weight.shape != (batch, num):
        raise ValueError(f"{name} must have shape (B, N) = ({batch}, {num}), got {_shape(weight)}")


def _element_weights(
    valid: torch.Tensor | None, weight: torch.Tensor | None, like: torch.Tensor
) -> torch.Tensor | None:
    """(B, N) weights from a (B,) ``valid`` and a (B, N) ``weight`` (either may be None); None if both are."""
    if valid is None and weight is None:
        return None
    b, n = like.shape[:2]
    w = torch.ones((b, n), dtype=like.dtype, device=like.device)
    if valid is not None:
        w = w * valid.to(device=like.device, dtype=like.dtype)[:, None]
    if weight is not None:
        w = w * weight.to(device=like.device, dtype=like.dtype)
    return w


def _sanitize(target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Put 0 in place of the label wherever its (B, N) weight is 0, so unlabelled entries may hold NaN."""
    if w is None:
        return target
    keep = (w > 0).reshape(w.shape + (1,) * (target.ndim - w.ndim))
    return torch.where(keep, target, torch.zeros((), dtype=target.dtype, device=target.device))


def _sanitize_rows(target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return target
    keep = (valid.to(target.device) > 0).reshape((-1,) + (1,) * (target.ndim - 1))
    return torch.where(keep, target, torch.zeros((), dtype=target.dtype, device=target.device))


def _reduce(err: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Weighted mean of a per-element error ``err`` (B, N) with weights ``w`` (B, N) or None (plain mean).

    Returns an exact 0 (attached to ``err``'s graph, zero gradient) when all weights are 0.
    """
    if w is None:
        return err.mean()
    num = (err * w).sum()
    den = w.sum()
    return num / den.clamp_min(torch.finfo(err.dtype).tiny)


def _float_dtype(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


# ----------------------------------------------------------------------------------------------------------
# 3D mesh and keypoints
# ----------------------------------------------------------------------------------------------------------
def mesh_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L1 mesh loss of one hierarchy level, ``mean |V - V*|`` (CMR Eq. 6, MobRecon Eq. 10).

    Args:
        pred: (B, V, 3) predicted vertices, metres.
        target: (B, V, 3) ground-truth vertices in the same frame (e.g. root-relative).
        valid: optional (B,) per-sample weight; 0 for samples without a mesh label.

    Returns:
        Scalar: the mean absolute error per coordinate over valid samples.
    """
    _check_tensor(pred, "pred", 3, "(B, V, 3)", last=3)
    _check_same(target, "target", pred, "pred")
    _check_valid(valid, pred.shape[0])
    w = _element_weights(valid, None, pred)
    target = _sanitize(target, w)
    return _reduce((pred - target).abs().mean(-1), w)


def multilevel_mesh_l1(
    preds: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    weights: Sequence[float] | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted sum over hierarchy levels of :func:`mesh_l1` (CMR supervises every decoder level).

    Args:
        preds: L tensors (B, V_l, 3), e.g. finest (778) to coarsest (49) or in any order matching ``targets``.
        targets: L tensors (B, V_l, 3), the labels of the same levels (e.g. ``topo.down[l] @ vertices``).
        weights: L floats, one per level; default all 1 (a plain sum over levels, as in CMR).
        valid: optional (B,) per-sample weight, shared by all levels.

    Returns:
        Scalar ``sum_l weights[l] * mesh_l1(preds[l], targets[l], valid)``.
    """
    if isinstance(preds, torch.Tensor) or len(preds) == 0:
        raise ValueError(f"preds must be a non-empty list of (B, V_l, 3) tensors, got {_shape(preds)}")
    if isinstance(targets, torch.Tensor) or len(targets) != len(preds):
        n = len(targets) if not isinstance(targets, torch.Tensor) else "a tensor"
        raise ValueError(f"targets must be a list with one tensor per level ({len(preds)}), got {n}")
    if weights is None:
        weights = [1.0] * len(preds)
    elif len(weights) != len(preds):
        raise ValueError(f"weights must hold one float per level ({len(preds)}), got {len(weights)}")
    for level, (p, t) in enumerate(zip(preds, targets)):
        _check_tensor(p, f"preds[{level}]", 3, "(B, V_l, 3)", last=3)
        _check_same(t, f"targets[{level}]", p, f"preds[{level}]")
        if p.shape[0] != preds[0].shape[0]:
            raise ValueError(f"preds[{level}] must have the batch size of preds[0], got {_shape(p)}")
    total = None
    for p, t, k in zip(preds, targets, weights):
        term = mesh_l1(p, t, valid) * float(k)
        total = term if total is None else total + term
    return total


def rotation_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L1 loss between rotation matrices, ``mean |R - R*|`` over the 9 entries (the hand's global rotation;
    our addition, for models with :class:`handrecon.nn.rotation_head.GlobalRotationHead`).

    Args:
        pred: (B, 3, 3) predicted rotations.
        target: (B, 3, 3) labels (e.g. ``axis_angle_to_matrix(pose[:, 0])``).
        valid: optional (B,) per-sample weight; 0 for samples without a pose label.

    Returns:
        Scalar: the mean absolute error per matrix entry over valid samples (0 = the same rotation; two
        rotations 180 degrees apart differ by up to 2 per entry).
    """
    _check_tensor(pred, "pred", 3, "(B, 3, 3)", last=3)
    if pred.shape[1] != 3:
        raise ValueError(f"pred must have shape (B, 3, 3), got {_shape(pred)}")
    _check_same(target, "target", pred, "pred")
    _check_valid(valid, pred.shape[0])
    w = _element_weights(valid, None, pred)
    target = _sanitize(target, w)
    return _reduce((pred - target).abs().mean(-1), w)


def regress_keypoints(vertices: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """Keypoints ``J V`` from vertices with a (J, V) regressor (dense or sparse).

    Args:
        vertices: (B, V, 3).
        regressor: (J, V), e.g. ``hand.keypoint_regressor`` (21, 778).

    Returns:
        (B, J, 3).
    """
    _check_tensor(vertices, "vertices", 3, "(B, V, 3)", last=3)
    if not isinstance(regressor, torch.Tensor) or regressor.ndim != 2 or regressor.shape[1] != vertices.shape[1]:
        raise ValueError(f"regressor must have shape (J, V) with V = {vertices.shape[1]}, got {_shape(regressor)}")
    regressor = regressor.to(device=vertices.device, dtype=vertices.dtype)
    if regressor.layout != torch.strided:
        b, v, _ = vertices.shape
        flat = vertices.permute(1, 0, 2).reshape(v, b * 3)
        return torch.sparse.mm(regressor, flat).reshape(-1, b, 3).permute(1, 0, 2)
    return torch.matmul(regressor, vertices)


def _keypoint_err(pred, target, weight, valid, pname, tname, ndim_last=None, squared=False):
    spec = "(B, N, D)" if ndim_last is None else f"(B, N, {ndim_last})"
    _check_tensor(pred, pname, 3, spec, last=ndim_last)
    _check_same(target, tname, pred, pname)
    _check_valid(valid, pred.shape[0])
    _check_weight(weight, pred.shape[0], pred.shape[1])
    w = _element_weights(valid, weight, pred)
    target = _sanitize(target, w)
    d = pred - target
    err = (d * d).sum(-1) if squared else d.abs().mean(-1)
    return _reduce(err, w)


def keypoint_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """L1 loss on directly predicted keypoints, any dimension (3D pose, 2D pose, ...).

    Args:
        pred: (B, N, D) predicted keypoints.
        target: (B, N, D) labels, same units.
        weight: optional (B, N) per-keypoint visibility / confidence.
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean absolute error per coordinate over weighted keypoints.
    """
    return _keypoint_err(pred, target, weight, valid, "pred", "target")


def keypoint_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared-error (L2) keypoint loss as in HAMR's L_3D / L_2D: mean over keypoints of ``||p - p*||^2``.

    Args:
        pred: (B, N, D) predicted keypoints.
        target: (B, N, D) labels.
        weight: optional (B, N) per-keypoint weight.
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: the weighted mean over keypoints of the squared Euclidean distance (summed over D).
    """
    return _keypoint_err(pred, target, weight, valid, "pred", "target", squared=True)


def keypoint_3d_l1(
    pred_vertices: torch.Tensor,
    target_keypoints: torch.Tensor,
    regressor: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """CMR's 3D pose loss ``mean |J V - J*|`` on keypoints regressed from the predicted mesh.

    Args:
        pred_vertices: (B, V, 3) predicted vertices, metres.
        target_keypoints: (B, J, 3) ground-truth keypoints in the same frame.
        regressor: (J, V) keypoint regressor (``hand.keypoint_regressor``, dense or sparse).
        valid: optional (B,) per-sample weight (0 where no 3D keypoints are labelled).

    Returns:
        Scalar: mean absolute error per coordinate.
    """
    _check_tensor(pred_vertices, "pred_vertices", 3, "(B, V, 3)", last=3)
    _check_tensor(target_keypoints, "target_keypoints", 3, "(B, J, 3)", last=3)
    if target_keypoints.shape[0] != pred_vertices.shape[0]:
        raise ValueError(
            f"target_keypoints must have the batch size of pred_vertices ({pred_vertices.shape[0]}), "
            f"got {_shape(target_keypoints)}"
        )
    if (
        not isinstance(regressor, torch.Tensor)
        or regressor.ndim != 2
        or tuple(regressor.shape) != (target_keypoints.shape[1], pred_vertices.shape[1])
    ):
        raise ValueError(
            f"regressor must have shape (J, V) = ({target_keypoints.shape[1]}, {pred_vertices.shape[1]}), "
            f"got {_shape(regressor)}"
        )
    keypoints = regress_keypoints(pred_vertices, regressor)
    return _keypoint_err(keypoints, target_keypoints, None, valid, "pred_vertices", "target_keypoints")


def keypoint_2d_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """MobRecon's 2D pose loss ``mean |L - L*|`` (Eq. 10).

    Args:
        pred: (B, N, 2) predicted 2D keypoints, normalised coordinates (crop pixels / crop side).
        target: (B, N, 2) labels, same normalisation.
        weight: optional (B, N) visibility (0 for keypoints without a label or outside the crop).
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean absolute error per coordinate over weighted keypoints.
    """
    return _keypoint_err(pred, target, weight, valid, "pred", "target", ndim_last=2)


def keypoint_2d_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """HAMR's 2D keypoint loss: weighted mean over keypoints of ``||L - L*||^2``.

    Args:
        pred: (B, N, 2) predicted 2D keypoints, normalised coordinates.
        target: (B, N, 2) labels.
        weight: optional (B, N) visibility.
        valid: optional (B,) per-sample weight.
    """
    return _keypoint_err(pred, target, weight, valid, "pred", "target", ndim_last=2, squared=True)


# ----------------------------------------------------------------------------------------------------------
# dense 2D cues: heatmaps and silhouettes
# ----------------------------------------------------------------------------------------------------------
def _check_heatmaps(pred, target, weight, valid, pname):
    _check_tensor(pred, pname, 4, "(B, J, H, W)")
    _check_same(target, "target", pred, pname)
    _check_valid(valid, pred.shape[0])
    _check_weight(weight, pred.shape[0], pred.shape[1])


def heatmap_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """CMR's 2D pose loss: binary cross entropy between predicted and Gaussian target heatmaps.

    Computed from logits with ``F.binary_cross_entropy_with_logits`` (numerically stable; the network's
    heatmaps are ``sigmoid(logits)``).

    Args:
        logits: (B, J, H, W) heatmap logits.
        target: (B, J, H, W) target heatmaps in [0, 1].
        weight: optional (B, J) per-keypoint weight (0 for an unlabelled keypoint).
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean BCE per pixel over weighted heatmaps.
    """
    _check_heatmaps(logits, target, weight, valid, "logits")
    w = _element_weights(valid, weight, logits)
    target = _sanitize(target, w)
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return _reduce(bce.flatten(2).mean(-1), w)


def heatmap_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hourglass-style heatmap loss (HAMR's L_ht): mean squared error per pixel.

    For stacked hourglasses, call once per stack (intermediate supervision) and sum.

    Args:
        pred: (B, J, H, W) predicted heatmaps (no activation).
        target: (B, J, H, W) target heatmaps.
        weight: optional (B, J) per-keypoint weight.
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean squared error per pixel over weighted heatmaps.
    """
    _check_heatmaps(pred, target, weight, valid, "pred")
    w = _element_weights(valid, weight, pred)
    target = _sanitize(target, w)
    return _reduce((pred - target).square().flatten(2).mean(-1), w)


def _silhouette_pair(pred, target, valid, pname):
    def squeeze(x, name):
        if not isinstance(x, torch.Tensor) or not (x.ndim == 3 or (x.ndim == 4 and x.shape[1] == 1)):
            raise ValueError(f"{name} must have shape (B, 1, H, W) or (B, H, W), got {_shape(x)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one sample, got shape {_shape(x)}")
        return x[:, 0] if x.ndim == 4 else x

    p = squeeze(pred, pname)
    t = squeeze(target, "target")
    if t.shape != p.shape:
        raise ValueError(f"target must match {pname} in (B, H, W) = {tuple(p.shape)}, got {_shape(target)}")
    _check_valid(valid, p.shape[0])
    t = _float_dtype(t).to(p.dtype)
    return p, _sanitize_rows(t, valid)


def _reduce_rows(err: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    per_sample = err.flatten(1).mean(-1)[:, None]
    return _reduce(per_sample, _element_weights(valid, None, per_sample))


def silhouette_bce(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """CMR's silhouette loss: BCE (from logits, numerically stable) with the hand mask.

    Args:
        logits: (B, 1, H, W) or (B, H, W) silhouette logits.
        target: (B, 1, H, W) or (B, H, W) mask, bool or float in [0, 1], same (B, H, W).
        valid: optional (B,) per-sample weight (0 where no mask is labelled).

    Returns:
        Scalar: mean BCE per pixel over valid samples.
    """
    p, t = _silhouette_pair(logits, target, valid, "logits")
    return _reduce_rows(F.binary_cross_entropy_with_logits(p, t, reduction="none"), valid)


def silhouette_l1(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """HAMR's L_seg: L1 between a rendered (soft) silhouette in [0, 1] and the hand mask.

    Args:
        pred: (B, 1, H, W) or (B, H, W) rendered silhouette probabilities.
        target: (B, 1, H, W) or (B, H, W) mask, bool or float in [0, 1].
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean absolute error per pixel over valid samples.
    """
    p, t = _silhouette_pair(pred, target, valid, "pred")
    return _reduce_rows((p - t).abs(), valid)


# ----------------------------------------------------------------------------------------------------------
# mesh smoothness: normals and edge lengths
# ----------------------------------------------------------------------------------------------------------
def _check_mesh_pair(pred, target, faces, valid):
    _check_tensor(pred, "pred", 3, "(B, V, 3)", last=3)
    _check_same(target, "target", pred, "pred")
    _check_valid(valid, pred.shape[0])
    if (
        not isinstance(faces, torch.Tensor)
        or faces.ndim != 2
        or faces.shape[1] != 3
        or faces.shape[0] == 0
        or faces.is_floating_point()
    ):
        raise ValueError(f"faces must be an integer tensor of shape (F, 3), F > 0, got {_shape(faces)}")
    return faces.to(device=pred.device, dtype=torch.long)


def normal_loss(
    pred: torch.Tensor, target: torch.Tensor, faces: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Normal loss of CMR / MobRecon (after Pixel2Mesh): predicted edges orthogonal to ground-truth normals.

    For each face ``(a, b, c)`` the unit ground-truth normal is
    ``n* = normalize(normalize(V*_b - V*_a) x normalize(V*_c - V*_a))``, and the loss is the mean, over
    the 3 edges ``(b-a, c-a, c-b)`` of every face, of ``|<normalize(V_j - V_i), n*>|`` (an absolute cosine,
    in [0, 1]), as in the official CMR code. Zero when the prediction equals the target up to a translation.

    Args:
        pred: (B, V, 3) predicted vertices.
        target: (B, V, 3) ground-truth vertices.
        faces: (F, 3) integer vertex indices (e.g. ``hand.faces`` or ``topo.faces[l]``).
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean absolute cosine over the 3F face edges of valid samples.
    """
    faces = _check_mesh_pair(pred, target, faces, valid)
    target = _sanitize_rows(target, valid)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    e_pred = torch.stack([pred[:, b] - pred[:, a], pred[:, c] - pred[:, a], pred[:, c] - pred[:, b]], dim=2)
    e_pred = F.normalize(e_pred, dim=-1)  # (B, F, 3 edges, 3)
    e1 = F.normalize(target[:, b] - target[:, a], dim=-1)
    e2 = F.normalize(target[:, c] - target[:, a], dim=-1)
    n_gt = F.normalize(torch.cross(e1, e2, dim=-1), dim=-1)  # (B, F, 3)
    cos = (e_pred * n_gt[:, :, None, :]).sum(-1).abs()  # (B, F, 3)
    return _reduce(cos.flatten(1), _element_weights(valid, None, cos.flatten(1)))


def _face_edge_lengths(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    e = torch.stack([v[:, a] - v[:, b], v[:, a] - v[:, c], v[:, b] - v[:, c]], dim=2)
    return torch.linalg.vector_norm(e, dim=-1)  # (B, F, 3); zero-length edges get a zero gradient


def edge_length_loss(
    pred: torch.Tensor, target: torch.Tensor, faces: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Edge length loss of CMR / MobRecon: ``mean | ||V_i - V_j|| - ||V*_i - V*_j|| |``.

    The edges are the 3 edges of every face (so an edge shared by two faces counts twice, as in the
    official code). Invariant to a rigid motion of either mesh.

    Args:
        pred: (B, V, 3) predicted vertices.
        target: (B, V, 3) ground-truth vertices.
        faces: (F, 3) integer vertex indices.
        valid: optional (B,) per-sample weight.

    Returns:
        Scalar: mean absolute edge length difference (metres) over the 3F face edges of valid samples.
    """
    faces = _check_mesh_pair(pred, target, faces, valid)
    target = _sanitize_rows(target, valid)
    diff = (_face_edge_lengths(pred, faces) - _face_edge_lengths(target, faces)).abs().flatten(1)
    return _reduce(diff, _element_weights(valid, None, diff))


# ----------------------------------------------------------------------------------------------------------
# MobRecon consistency between two augmented views (Eq. 11)
# ----------------------------------------------------------------------------------------------------------
def rotation_from_affine(affine: torch.Tensor) -> torch.Tensor:
    """The 3D rotation ``R_{1->2}`` that a 2D crop affine applies to camera-space points.

    The in-plane rotation nearest to the linear part ``A`` of the affine (angle
    ``atan2(A10 - A01, A00 + A11)``; exact for rotation + uniform scale + shift) becomes a rotation about the
    camera z axis: in the OpenCV camera frame (x right, y down, z forward) and pixel frame (x right, y down)
    rotating the image about the principal point by ``R2`` rotates camera-space points by
    ``[[R2, 0], [0, 1]]``. For a crop rotated about its own centre this is MobRecon's approximation.

    Args:
        affine: (B, 2, 3) pixel affine ``[A | t]`` of the crop (``p2 = A p1 + t``).

    Returns:
        (B, 3, 3) rotation matrices.
    """
    _check_tensor(affine, "affine", 3, "(B, 2, 3)", last=3)
    if affine.shape[1] != 2:
        raise ValueError(f"affine must have shape (B, 2, 3), got {_shape(affine)}")
    a = _float_dtype(affine)
    angle = torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1])
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(cos), torch.ones_like(cos)
    return torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=-1).reshape(-1, 3, 3)


def consistency_2d(
    kp2d_view1: torch.Tensor,
    kp2d_view2: torch.Tensor,
    affine_1to2: torch.Tensor,
    valid: torch.Tensor | None = None,
    crop_size: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """MobRecon's 2D consistency loss ``mean |T_{1->2} L_view1 - L_view2|`` (Eq. 11, 2D part).

    Coordinates are **pixels of the crops** (the network's normalised output times the crop side); the
    affine maps crop-1 pixels to crop-2 pixels in the OpenCV ``warpAffine`` convention,
    ``p2 = A @ p1 + t`` with ``affine_1to2 = [A | t]``, both crops using the same pixel convention. Gradients
    flow into both views (as in MobRecon); detach one view to use it as a teacher.

    Args:
        kp2d_view1: (B, N, 2) view-1 predictions, crop-1 pixels.
        kp2d_view2: (B, N, 2) view-2 predictions, crop-2 pixels.
        affine_1to2: (B, 2, 3) relative affine from crop 1 to crop 2 (rotation, scale, shift).
        valid: optional (B,) per-sample weight.
        crop_size: optional crop side in pixels (float or (B,) tensor); when given the differences are
            divided by it, so the loss is in the normalised units of :func:`keypoint_2d_l1`.

    Returns:
        Scalar: mean absolute difference per coordinate (pixels, or crop sides with ``crop_size``).
    """
    _check_tensor(kp2d_view1, "kp2d_view1", 3, "(B, N, 2)", last=2)
    _check_same(kp2d_view2, "kp2d_view2", kp2d_view1, "kp2d_view1")
    b = kp2d_view1.shape[0]
    if not isinstance(affine_1to2, torch.Tensor) or tuple(affine_1to2.shape) != (b, 2, 3):
        raise ValueError(f"affine_1to2 must have shape (B, 2, 3) = ({b}, 2, 3), got {_shape(affine_1to2)}")
    _check_valid(valid, b)
    t = affine_1to2.to(device=kp2d_view1.device, dtype=kp2d_view1.dtype)
    mapped = kp2d_view1 @ t[:, :, :2].transpose(1, 2) + t[:, None, :, 2]
    diff = (mapped - kp2d_view2).abs()
    if crop_size is not None:
        size = torch.as_tensor(crop_size, dtype=diff.dtype, device=diff.device)
        if size.ndim == 1 and size.shape[0] == b:
            size = size[:, None, None]
        elif size.ndim != 0:
            raise ValueError(f"crop_size must be a float or a (B,) tensor, got {_shape(crop_size)}")
        diff = diff / size
    w = _element_weights(valid, None, kp2d_view1)
    if w is not None:
        diff = torch.where((w > 0)[..., None], diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
    return _reduce(diff.mean(-1), w)


def consistency_3d(
    verts_view1: torch.Tensor,
    verts_view2: torch.Tensor,
    rotation_1to2: torch.Tensor,
    valid: torch.Tensor | None = None,
    root_view1: torch.Tensor | None = None,
    root_view2: torch.Tensor | None = None,
) -> torch.Tensor:
    """MobRecon's 3D consistency loss ``mean |R_{1->2} V_view1 - V_view2|`` (Eq. 11, 3D part).

    The vertices must be root-relative (the rotation acts about the root; the shift and scale of the crop
    affine do not change root-relative 3D). Pass ``root_view1`` / ``root_view2`` to have them subtracted
    here from camera-space vertices. Gradients flow into both views.

    Args:
        verts_view1: (B, V, 3) view-1 vertices (or keypoints), metres.
        verts_view2: (B, V, 3) view-2 vertices.
        rotation_1to2: (B, 3, 3) rotation in camera space (see :func:`rotation_from_affine`), or (B, 2, 2)
            in-plane rotation of the image, taken as a rotation about the camera z axis.
        valid: optional (B,) per-sample weight.
        root_view1: optional (B, 3) root subtracted from ``verts_view1`` first.
        root_view2: optional (B, 3) root subtracted from ``verts_view2`` first.

    Returns:
        Scalar: mean absolute difference per coordinate, metres.
    """
    _check_tensor(verts_view1, "verts_view1", 3, "(B, V, 3)", last=3)
    _check_same(verts_view2, "verts_view2", verts_view1, "verts_view1")
    b = verts_view1.shape[0]
    r = rotation_1to2
    if not isinstance(r, torch.Tensor) or tuple(r.shape) not in ((b, 3, 3), (b, 2, 2)):
        raise ValueError(f"rotation_1to2 must have shape (B, 3, 3) or (B, 2, 2) with B = {b}, got {_shape(r)}")
    _check_valid(valid, b)
    v1, v2 = verts_view1, verts_view2
    for name, root in (("root_view1", root_view1), ("root_view2", root_view2)):
        if root is not None and (not isinstance(root, torch.Tensor) or tuple(root.shape) != (b, 3)):
            raise ValueError(f"{name} must have shape (B, 3) = ({b}, 3), got {_shape(root)}")
    if root_view1 is not None:
        v1 = v1 - root_view1[:, None, :]
    if root_view2 is not None:
        v2 = v2 - root_view2[:, None, :]
    r = r.to(device=v1.device, dtype=v1.dtype)
    if r.shape[-1] == 2:
        r3 = torch.zeros((b, 3, 3), dtype=r.dtype, device=r.device)
        r3[:, :2, :2] = r
        r3[:, 2, 2] = 1
        r = r3
    diff = (v1 @ r.transpose(1, 2) - v2).abs()
    w = _element_weights(valid, None, v1)
    if w is not None:
        diff = torch.where((w > 0)[..., None], diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
    return _reduce(diff.mean(-1), w)


# ----------------------------------------------------------------------------------------------------------
# weighted sum
# ----------------------------------------------------------------------------------------------------------
def total_loss(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of named loss terms, and their values for logging.

    A term whose weight is 0 is skipped (neither added, so a NaN there cannot spread, nor logged). A weight
    without a term is allowed (a preset may weigh terms a model does not compute).

    Args:
        terms: name -> scalar tensor, e.g. ``{"mesh": mesh_l1(...), "normal": normal_loss(...)}``.
        weights: name -> float; every name in ``terms`` must have one.

    Returns:
        ``(total, log)``: the scalar weighted sum (with graph) and a dict of the unweighted term values as
        floats plus ``"total"``.

    Raises:
        ValueError: a term has no weight (the unknown names are listed), a term is not a scalar, or no term
            has a nonzero weight.
    """
    unknown = sorted(set(terms) - set(weights))
    if unknown:
        raise ValueError(f"terms has names without a weight: {unknown}; known weights: {sorted(weights)}")
    total = None
    log: dict[str, float] = {}
    for name, value in terms.items():
        k = float(weights[name])
        if k == 0.0:
            continue
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError(f"terms[{name!r}] must be a scalar tensor, got {_shape(value)}")
        value = value.reshape(())
        total = value * k if total is None else total + value * k
        log[name] = float(value.detach())
    if total is None:
        raise ValueError(f"no term has a nonzero weight (terms: {sorted(terms)})")
    log["total"] = float(total.detach())
    return total, log
