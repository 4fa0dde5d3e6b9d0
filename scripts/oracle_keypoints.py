"""How much of a MobRecon model's mesh error comes from its 2D keypoints: score it on a held-out set twice, once
as it is and once with the labelled 2D keypoints put in place of MapReg's (pose pooling and the global
rotation head then read the true keypoints; everything else is the model's own).

    .venv/bin/python scripts/oracle_keypoints.py handrecon/assets/models/mobrecon-ghost-sil-synth \\
        data/synth-eval-s7-300

Same crops as ``handrecon eval --crop box --crop-scale 1.4`` and the same aligned metrics (PA-MPJPE on the joints
regressed from the mesh, PA-MPVPE); prints one row per mode. A model whose mesh follows its keypoints closely
gains much from the true ones; a small gain says the error lies in the lifting and the decoder instead.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import DataLoader

from handrecon.data import FreiHAND
from handrecon.evaluate import eval_transform
from handrecon.hand import load_hand_model
from handrecon.metrics import pa_mpjpe, pa_mpvpe
from handrecon.models import load_model


@contextmanager
def keypoints_replaced(model: torch.nn.Module, uv: torch.Tensor):
    """Within the block, ``model``'s 2D head answers ``uv`` ((B,21,2) normalised crop coordinates)."""
    head = model.keypoint_head
    forward = head.forward

    def replaced(*args, **kwargs):
        return dict(forward(*args, **kwargs), uv=uv)

    head.forward = replaced
    try:
        yield
    finally:
        del head.forward  # back to the class's forward


def score(model, data: str, crop_scale: float, batch_size: int = 32) -> dict:
    """Mean PA-MPJPE / PA-MPVPE (mm) and 2D error (crop pixels) with the model's keypoints and the true ones."""
    if not hasattr(model, "keypoint_head"):
        raise SystemExit(f"{type(model).__name__} has no keypoint_head: this diagnostic is for MobRecon models")
    S = model.config.input_size
    transform = eval_transform(S, "box", crop_scale)
    dataset = FreiHAND(data, "evaluation")
    loader = DataLoader([transform(dataset[i]) for i in range(len(dataset))], batch_size=batch_size)
    regressor = load_hand_model("open").keypoint_regressor.double()
    errors = {mode: {"pa_mpjpe_mm": [], "pa_mpvpe_mm": [], "kp2d_crop_px": []} for mode in ("model", "true")}
    with torch.inference_mode():
        for batch in loader:
            gt_verts = batch["vertices_rel"].double().numpy()
            gt_kps = batch["keypoints_rel"].double().numpy()
            true_uv = batch["keypoints_2d"]
            for mode in errors:
                if mode == "true":
                    with keypoints_replaced(model, true_uv):
                        out = model(batch["image"])
                else:
                    out = model(batch["image"])
                verts = out["vertices"].double()
                kps = (regressor @ verts).numpy()
                uv_err = (out["keypoints_2d"] - (true_uv * S - 0.5)).norm(dim=-1).mean(-1)
                errors[mode]["pa_mpjpe_mm"].append(pa_mpjpe(kps, gt_kps) * 1000)
                errors[mode]["pa_mpvpe_mm"].append(pa_mpvpe(verts.numpy(), gt_verts) * 1000)
                errors[mode]["kp2d_crop_px"].append(uv_err.numpy())
    return {mode: {k: float(np.mean(np.concatenate(v))) for k, v in e.items()} for mode, e in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="PATH of a saved MobRecon model (PATH.safetensors + PATH.json)")
    parser.add_argument("data", help="a held-out FreiHAND-layout folder with 3D labels")
    parser.add_argument("--crop-scale", type=float, default=1.4)
    args = parser.parse_args()
    model = load_model(args.weights).eval()
    rows = score(model, args.data, args.crop_scale)
    print(f"{'2D keypoints':<14} {'PA-MPJPE mm':>12} {'PA-MPVPE mm':>12} {'2D err (crop px)':>17}")
    for mode, r in rows.items():
        print(f"{mode:<14} {r['pa_mpjpe_mm']:>12.2f} {r['pa_mpvpe_mm']:>12.2f} {r['kp2d_crop_px']:>17.2f}")


if __name__ == "__main__":
    main()
