"""The global-rotation head: the 6D representation gives proper rotations, recovers a rotation from its first
two columns, starts at the identity, and names a bad input."""

import pytest
import torch

from handrecon.hand.lbs import axis_angle_to_matrix
from handrecon.nn.rotation_head import GlobalRotationHead, rotation_6d_to_matrix


def test_6d_gives_proper_rotations_and_recovers_a_rotation_from_its_columns():
    torch.manual_seed(0)
    R = rotation_6d_to_matrix(torch.randn(64, 6) * 3)
    eye = torch.eye(3).expand(64, 3, 3)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(64), atol=1e-5)
    truth = axis_angle_to_matrix(torch.randn(64, 3))
    d6 = torch.cat([truth[..., 0] * 2.5, truth[..., 1] * 0.3 + truth[..., 0] * 0.7], -1)  # scaled, not orthogonal
    assert torch.allclose(rotation_6d_to_matrix(d6), truth, atol=1e-5)


def test_6d_is_finite_for_degenerate_input_and_names_bad_shapes():
    assert torch.isfinite(rotation_6d_to_matrix(torch.zeros(2, 6))).all()
    with pytest.raises(ValueError, match="d6"):
        rotation_6d_to_matrix(torch.zeros(2, 9))
    with pytest.raises(ValueError, match=r"features must have shape \(B, 16\)"):
        GlobalRotationHead(16)(torch.zeros(2, 16, 1, 1))


def test_head_starts_at_identity_and_then_learns():
    head = GlobalRotationHead(16)
    features = torch.rand(4, 16)
    R = head(features)
    assert torch.equal(R, torch.eye(3).expand(4, 3, 3))
    target = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.8]])).expand(4, 3, 3)
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = (head(features) - target).abs().mean()
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
