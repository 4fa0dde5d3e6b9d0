"""The bundled open hand is exactly what scripts/build_open_hand.py builds from the design."""

import numpy as np
import pytest

from handrecon.hand import load_hand_model

pytest.importorskip("skimage", reason="the builder needs scikit-image (installed with .[dev])")


def test_rebuild_reproduces_the_bundled_asset():
    from handrecon.hand.builder import build_open_hand

    built = build_open_hand().arrays()
    hand = load_hand_model("open")
    np.testing.assert_array_equal(built["faces"], hand.faces.numpy())
    for name in ("v_template", "weights", "joint_regressor", "keypoint_regressor", "shapedirs", "joint_frames"):
        np.testing.assert_allclose(built[name], getattr(hand, name).numpy(), atol=1e-6, err_msg=name)
