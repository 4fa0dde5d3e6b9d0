"""load_hand_model('mano', path=...) on a MANO-format pickle written from the open hand."""

import numpy as np
import pytest
import torch

from handrecon.hand import load_hand_model
from mano_fixture import write_mano_pickle


@pytest.fixture(scope="module")
def open_hand():
    return load_hand_model("open")


def _write(hand, path, posedirs=None):
    write_mano_pickle(
        path,
        v_template=hand.v_template.numpy().astype(np.float64),
        faces=hand.faces.numpy(),
        weights=hand.weights.numpy().astype(np.float64),
        J_regressor=hand.joint_regressor.numpy().astype(np.float64),
        shapedirs=hand.shapedirs.numpy().astype(np.float64),
        posedirs=posedirs,
    )


def test_mano_pickle_gives_the_same_hand(open_hand, tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    _write(open_hand, path, posedirs=np.zeros((778, 3, 135)))
    mano = load_hand_model("mano", path=path)
    assert mano.name == "mano" and mano.num_vertices == 778 and mano.num_shape == open_hand.num_shape
    pose = torch.stack([open_hand.named_pose("fist"), open_hand.named_pose("ok")])
    shape = torch.randn(2, open_hand.num_shape, generator=torch.Generator().manual_seed(0))
    a, b = open_hand(pose, shape), mano(pose, shape)
    # The MANO loader uses the official tip vertices; the open hand put its tips at the same indices.
    torch.testing.assert_close(b.vertices, a.vertices, atol=2e-6, rtol=0)
    torch.testing.assert_close(b.keypoints, a.keypoints, atol=2e-6, rtol=0)


def test_pose_correctives_are_applied(open_hand, tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    posedirs = np.zeros((778, 3, 135))
    posedirs[100, 1, 13] = 0.5  # vertex 100 moves in y with entry (1,1) of joint 2's R - I
    _write(open_hand, path, posedirs=posedirs)
    mano = load_hand_model("mano", path=path)
    pose = torch.zeros(1, 16, 3)
    pose[0, 2] = torch.tensor([0.3, 0.0, 0.0])
    plain = open_hand(pose).vertices[0]
    corrected = mano(pose).vertices[0]
    delta = (corrected - plain).norm(dim=-1)
    assert delta[100] > 1e-4
    others = torch.ones(778, dtype=torch.bool)
    others[100] = False
    # Only vertex 100 (and the wrist-centring shift, which is zero since it is not in the wrist ring) moves.
    assert delta[others].max() < 1e-6


def test_malicious_mano_file_is_refused_through_the_public_api(tmp_path):
    from handrecon.hand.mano import ManoFileError
    from mano_fixture import write_malicious_pickle

    canary = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    write_malicious_pickle(path, canary, "os.system")
    with pytest.raises(ManoFileError):
        load_hand_model("mano", path=path)
    assert not canary.exists()
