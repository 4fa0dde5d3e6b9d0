import numpy as np
import torch

from handrecon.camera import project_points
from handrecon.hand import load_hand_model
from handrecon.synth.views import NUM_VIEWS, ViewConfig, look_at, palm_centre, place_camera, view_direction


def _hand():
    hand = load_hand_model("open")
    with torch.no_grad():
        out = hand(hand.named_pose("relaxed")[None])
    return out.vertices[0].double().numpy(), out.keypoints[0].double().numpy()


def test_viewpoints_cover_the_216_cells_and_keep_the_hand_in_the_image():
    verts, kps = _hand()
    rng = np.random.default_rng(0)
    views, depths, fractions = set(), [], []
    for _ in range(2500):
        cam = place_camera(rng, verts, kps, 224)
        R = cam.R
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(R), 1.0)
        cam_verts = (verts - kps[0]) @ R.T + cam.root
        uv = project_points(cam_verts, cam.K)
        assert uv.min() >= 0 and uv.max() <= 223
        views.add(cam.view)
        depths.append(palm_centre((kps - kps[0]) @ R.T + cam.root)[2])
        fractions.append((uv.max(0) - uv.min(0)).max() / 224)
    assert views == set(range(NUM_VIEWS))
    depths = np.array(depths)
    assert depths.min() >= 0.3 - 1e-9 and depths.max() <= 0.9 + 1e-9 and np.ptp(depths) > 0.5
    assert np.median(fractions) > 0.3


def test_look_at_points_the_optical_axis_at_the_target():
    for lon, lat in [(0.0, 0.0), (1.0, 0.5), (3.0, 1.5)]:
        d = view_direction(lon, lat)
        R = look_at(d, up_hint=np.array([-1.0, 0, 0]))
        # The target (origin) seen from the camera at d lies on +z.
        p = R @ (np.zeros(3) - d)
        assert np.allclose(p[:2], 0, atol=1e-12) and p[2] > 0


def test_config_ranges_are_respected():
    verts, kps = _hand()
    rng = np.random.default_rng(3)
    cfg = ViewConfig(distance=(0.5, 0.5), roll=(0.0, 0.0))
    for _ in range(20):
        cam = place_camera(rng, verts, kps, 128, cfg)
        centre = palm_centre((kps - kps[0]) @ cam.R.T + cam.root)
        assert abs(centre[2] - 0.5) < 1e-9
