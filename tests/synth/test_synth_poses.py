import numpy as np
import pytest

from handrecon.hand.poses import JOINT_LIMITS, NAMED_POSE_ANGLES
from handrecon.synth.poses import (
    NUM_BASE_POSES,
    NUM_UNIFORM_POSES,
    PoseJitter,
    base_pose_angles,
    sample_pose_angles,
    uniform_pose_table,
)


def test_base_poses_are_the_32_finger_combinations():
    base = base_pose_angles()
    assert base.shape == (32, 16, 3)
    assert np.allclose(base[0], 0.0)                       # all extended
    assert np.allclose(base[31], NAMED_POSE_ANGLES["fist"])  # all bent
    flat = base.reshape(32, -1)
    assert len(np.unique(flat.round(6), axis=0)) == 32


def test_uniform_table_has_1520_interpolated_poses():
    angles, pairs, steps = uniform_pose_table()
    assert NUM_UNIFORM_POSES == 1520 and angles.shape == (1520, 16, 3)
    base = base_pose_angles()
    for row in (32, 500, 1519):
        a, b = pairs[row]
        assert a < b
        assert np.allclose(angles[row], (1 - steps[row]) * base[a] + steps[row] * base[b])
    # Every unordered pair appears exactly three times.
    inter = pairs[32:]
    assert len({tuple(p) for p in inter}) == 496
    assert sorted(set(steps[32:])) == [0.25, 0.5, 0.75]


def test_samples_stay_within_joint_limits_and_cover_every_base_pose():
    rng = np.random.default_rng(0)
    _, pairs, _ = uniform_pose_table()
    seen, exact = set(), set()
    for _ in range(3000):
        angles, source = sample_pose_angles(rng)
        assert np.all(angles >= JOINT_LIMITS[..., 0] - 1e-9) and np.all(angles <= JOINT_LIMITS[..., 1] + 1e-9)
        assert np.all(angles[0] == 0)
        if source >= 0:
            seen.update(int(p) for p in pairs[source])
            if source < NUM_BASE_POSES:
                exact.add(source)
    assert seen == set(range(NUM_BASE_POSES))
    assert len(exact) > 20  # about 57 draws land on a base pose itself


def test_named_poses_are_drawn_with_their_probability():
    rng = np.random.default_rng(1)
    sources = [sample_pose_angles(rng, PoseJitter(named_probability=1.0))[1] for _ in range(50)]
    assert all(s < 0 for s in sources)
    with pytest.raises(TypeError):
        PoseJitter(unknown=1)
