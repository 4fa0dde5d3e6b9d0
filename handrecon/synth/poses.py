"""MobRecon's uniformly distributed hand poses, built on the open hand's joint limits.

Each finger is either fully extended or fully bent, giving 2^5 = 32 *base poses*; every pair of base poses
is interpolated at 3 intermediate steps (496 pairs x 3 = 1,488), giving 1,520 poses in all (MobRecon,
supplementary section "Data Designs"). :func:`sample_pose_angles` draws from that table (or the named poses)
and adds finger splay and jitter inside :data:`handrecon.hand.JOINT_LIMITS`.

Poses here are anatomical angles (16,3): (flexion, abduction, twist) per joint; row 0 (global rotation)
is zero. ``HandModel.angles_to_pose`` turns them into axis-angle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from handrecon.hand.keypoints import FINGER_JOINTS, FINGERS, NUM_JOINTS
from handrecon.hand.poses import JOINT_LIMITS, NAMED_POSE_ANGLES, POSE_NAMES

__all__ = [
    "NUM_BASE_POSES",
    "NUM_UNIFORM_POSES",
    "INTERPOLATION_STEPS",
    "PoseJitter",
    "base_pose_angles",
    "uniform_pose_table",
    "sample_pose_angles",
]

NUM_BASE_POSES = 32
INTERPOLATION_STEPS = (0.25, 0.5, 0.75)
NUM_UNIFORM_POSES = NUM_BASE_POSES + NUM_BASE_POSES * (NUM_BASE_POSES - 1) // 2 * len(INTERPOLATION_STEPS)

# A finger's "fully bent" state is its row of the fist (the thumb folds over the bent fingers).
_BENT = NAMED_POSE_ANGLES["fist"]
_SPREAD = NAMED_POSE_ANGLES["spread"]


def base_pose_angles() -> np.ndarray:
    """(32,16,3) base poses: bit ``f`` of the index set means finger ``FINGERS[f]`` is fully bent.

    Index 0 is the flat hand, index 31 the fist.
    """
    out = np.zeros((NUM_BASE_POSES, NUM_JOINTS, 3))
    for i in range(NUM_BASE_POSES):
        for f, name in enumerate(FINGERS):
            if (i >> f) & 1:
                ids = list(FINGER_JOINTS[name])
                out[i, ids] = _BENT[ids]
    return out


def uniform_pose_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1,520 uniform poses.

    Returns:
        angles: (1520,16,3) anatomical angles; rows 0..31 are the base poses, then for each pair
            ``(a, b)``, ``a < b`` in lexicographic order, the poses at ``INTERPOLATION_STEPS``.
        pairs: (1520,2) int, the base poses each row lies between (``(i, i)`` for a base pose).
        steps: (1520,) float, the interpolation weight of ``pairs[:, 1]`` (0 for a base pose).
    """
    base = base_pose_angles()
    angles, pairs, steps = list(base), [(i, i) for i in range(NUM_BASE_POSES)], [0.0] * NUM_BASE_POSES
    for a, b in itertools.combinations(range(NUM_BASE_POSES), 2):
        for t in INTERPOLATION_STEPS:
            angles.append((1 - t) * base[a] + t * base[b])
            pairs.append((a, b))
            steps.append(t)
    return np.stack(angles), np.asarray(pairs, dtype=np.int64), np.asarray(steps)


@dataclass(frozen=True)
class PoseJitter:
    """How far a sampled pose departs from its table entry.

    Attributes:
        named_probability: chance of starting from a named pose (relaxed, pinch, ok, ...) instead of the
            uniform table.
        splay: range of the factor applied to the "spread" pose's abduction (negative closes the fingers).
        flexion, abduction, twist: standard deviations (radians) of Gaussian noise per joint angle.
    """

    named_probability: float = 0.1
    splay: tuple[float, float] = (-0.4, 1.0)
    flexion: float = 0.12
    abduction: float = 0.04
    twist: float = 0.03


_TABLE = None


def _table():
    global _TABLE
    if _TABLE is None:
        _TABLE = uniform_pose_table()
    return _TABLE


def sample_pose_angles(rng: np.random.Generator, jitter: PoseJitter = PoseJitter()) -> tuple[np.ndarray, int]:
    """Draw one pose.

    Returns:
        angles: (16,3) anatomical angles inside the joint limits (row 0 zero).
        source: index into :func:`uniform_pose_table` (0..1519), or ``-1 - k`` for ``POSE_NAMES[k]``.
    """
    angles_table = _table()[0]
    if rng.random() < jitter.named_probability:
        k = int(rng.integers(len(POSE_NAMES)))
        angles, source = NAMED_POSE_ANGLES[POSE_NAMES[k]].copy(), -1 - k
    else:
        source = int(rng.integers(NUM_UNIFORM_POSES))
        angles = angles_table[source].copy()
    angles[:, 1] += rng.uniform(*jitter.splay) * _SPREAD[:, 1]
    angles += rng.normal(size=angles.shape) * np.array([jitter.flexion, jitter.abduction, jitter.twist])
    angles = np.clip(angles, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])
    angles[0] = 0.0
    return angles, source
