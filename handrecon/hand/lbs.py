"""Linear blend skinning as small pure functions on batched tensors (the maths of MANO/SMPL).

    v_shaped = v_template + shapedirs . shape                       blend shapes
    joints   = joint_regressor @ v_shaped                           rest joints of this shape
    v_posed  = v_shaped + posedirs . (R[1:] - I)                    pose correctives (MANO only)
    G_k      = G_parent(k) [R_k | j_k - j_parent(k)]                kinematic chain
    v        = sum_k w_k (G_k - [0 | G_k^R j_k]) v_posed            skinning

Shapes use ``B`` for the batch, ``V`` vertices, ``J`` joints, ``S`` shape coefficients.
"""

from __future__ import annotations

import torch

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "blend_shapes",
    "pose_features",
    "kinematic_chain",
    "skin_vertices",
    "lbs",
]


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (..., 3) axis-angle -> (..., 3, 3) rotation matrices.

    Exact and differentiable at zero (uses the series of sin(t)/t and (1-cos t)/t^2 near zero).
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True).unsqueeze(-1)  # (...,1,1)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(axis_angle.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, pi]."""
    trace = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    cos = ((trace - 1.0) / 2.0).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    vee = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = torch.sin(angle)
    axis = vee / (2.0 * sin.clamp_min(1e-7)).unsqueeze(-1)
    # Near pi, sin(angle) vanishes: take the axis from the symmetric part instead.
    sym = (R + R.transpose(-1, -2)) / 2.0 - cos[..., None, None] * torch.eye(3, dtype=R.dtype, device=R.device)
    col = torch.argmax(torch.diagonal(sym, dim1=-2, dim2=-1), dim=-1)
    axis_pi = torch.gather(sym, -1, col[..., None, None].expand(sym.shape[:-1] + (1,))).squeeze(-1)
    axis_pi = axis_pi / axis_pi.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis_pi = axis_pi * torch.where((axis_pi * vee).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    near_pi = (angle > 3.14159 - 1e-3)[..., None]
    axis = torch.where(near_pi, axis_pi, axis)
    return axis * angle[..., None]


def blend_shapes(shape: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Displacements (B,V,3) of shape coefficients ``shape`` (B,S) on ``shapedirs`` (V,3,S)."""
    return torch.einsum("bs,vcs->bvc", shape, shapedirs)


def pose_features(rotations: torch.Tensor) -> torch.Tensor:
    """MANO's pose-corrective features: (B,J,3,3) -> (B,(J-1)*9) entries of R_k - I for k >= 1."""
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - eye).flatten(1)


def kinematic_chain(rotations: torch.Tensor, joints: torch.Tensor, parents) -> tuple[torch.Tensor, torch.Tensor]:
    """World transforms of a kinematic tree.

    Args:
        rotations: (B,J,3,3) relative rotation of each joint.
        joints: (B,J,3) rest joint positions.
        parents: sequence of J parent indices, -1 for the root; parents precede children.

    Returns:
        posed_joints (B,J,3) and skinning transforms (B,J,4,4) that map rest-pose points to posed ones.
    """
    B, J = joints.shape[:2]
    rel = joints.clone()
    parent_idx = [p for p in parents[1:]]
    rel[:, 1:] = joints[:, 1:] - joints[:, parent_idx]
    local = torch.zeros(B, J, 4, 4, dtype=joints.dtype, device=joints.device)
    local[..., :3, :3] = rotations
    local[..., :3, 3] = rel
    local[..., 3, 3] = 1.0
    chain = [local[:, 0]]
    for k in range(1, J):
        chain.append(chain[parents[k]] @ local[:, k])
    world = torch.stack(chain, dim=1)
    posed_joints = world[..., :3, 3]
    # Remove the rest position so that the transform applies to rest-pose vertices directly.
    offset = (world[..., :3, :3] @ joints.unsqueeze(-1)).squeeze(-1)
    skin = world.clone()
    skin[..., :3, 3] = posed_joints - offset
    return posed_joints, skin


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend the joints' transforms: vertices (B,V,3), weights (V,J), transforms (B,J,4,4) -> (B,V,3)."""
    blended = torch.einsum("vj,bjmn->bvmn", weights, transforms)
    return (blended[..., :3, :3] @ vertices.unsqueeze(-1)).squeeze(-1) + blended[..., :3, 3]


def lbs(pose, shape, v_template, shapedirs, joint_regressor, weights, parents, posedirs=None):
    """Shape, pose and skin a template.

    Args:
        pose: (B,J,3) axis-angle relative rotations (index 0 = global rotation about the root joint).
        shape: (B,S) shape coefficients.
        v_template: (V,3); shapedirs: (V,3,S); joint_regressor: (J,V); weights: (V,J).
        parents: J parent indices. posedirs: optional ((J-1)*9, V*3) pose correctives.

    Returns:
        vertices (B,V,3), posed joints (B,J,3).
    """
    v_shaped = v_template.unsqueeze(0) + blend_shapes(shape, shapedirs)
    joints = torch.einsum("jv,bvc->bjc", joint_regressor, v_shaped)
    rotations = axis_angle_to_matrix(pose)
    v_posed = v_shaped
    if posedirs is not None:
        v_posed = v_shaped + (pose_features(rotations) @ posedirs).view_as(v_shaped)
    posed_joints, transforms = kinematic_chain(rotations, joints, parents)
    return skin_vertices(v_posed, weights, transforms), posed_joints
