"""``handrecon demo``: what handrecon can show today, with no arguments and no downloads.

Poses the bundled open hand in its named poses, writes each as an OBJ mesh and all of them as a PNG
contact sheet (back, palm and three-quarter views), renders a sheet of synthetic training samples (image
with 2D keypoints, and mask), and says where the files are.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from handrecon.hand import POSE_NAMES, load_hand_model
from handrecon.mesh import save_mesh
from handrecon.render import contact_sheet

__all__ = ["run_demo"]


def run_demo(out_dir="outputs/demo", poses=POSE_NAMES, quiet=False) -> dict:
    """Write ``hand_<pose>.obj`` per pose and ``contact_sheet.png`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hand = load_hand_model("open")
    with torch.no_grad():
        result = hand(torch.stack([hand.named_pose(name) for name in poses]))
    faces = hand.faces.numpy()
    meshes = {}
    for name, verts in zip(tqdm(poses, desc="meshes", disable=quiet), result.vertices.numpy()):
        path = out / f"hand_{name}.obj"
        save_mesh(path, verts, faces)
        meshes[name] = path
    sheet = out / "contact_sheet.png"
    contact_sheet(sheet, list(result.vertices.numpy()), faces, titles=list(poses),
                  views=("back", "palm", "three_quarter"))
    from handrecon.synth import SceneGenerator
    from handrecon.synth.preview import sample_sheet

    generator = SceneGenerator(seed=0)
    samples = [generator.generate([i])[0] for i in tqdm(range(12), desc="synthetic samples", disable=quiet)]
    synthetic = sample_sheet(out / "synthetic_samples.png", samples)
    return {"meshes": meshes, "contact_sheet": sheet, "synthetic_samples": synthetic}
