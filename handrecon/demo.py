"""``handrecon demo``: the main job on the bundled default model, with no arguments and no downloads.

Runs :class:`handrecon.Predictor` (the bundled model) on the bundled demo images (held-out synthetic renders,
``handrecon/assets/demo``, made by ``scripts/build_demo_images.py`` with a seed no training set uses), with
their intrinsics and left/right flags, exactly as ``handrecon predict`` would; writes per image the
camera-space mesh (OBJ, PLY), a JSON and an overlay PNG, plus a summary sheet (``summary.png``) and an HTML
page (``index.html``); prints the camera-space errors against the images' labels. Also writes a contact sheet
of the open hand in its named poses and a sheet of synthetic training samples.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from handrecon.fileio import atomic_path

__all__ = ["run_demo", "demo_samples", "DEMO_FOLDER"]

DEMO_FOLDER = Path(__file__).resolve().parent / "assets" / "demo"


def demo_samples() -> list[dict]:
    """The bundled demo images: dicts with ``path``, ``K`` (3,3), ``left``, ``keypoints`` (21,3) and
    ``vertices`` (778,3) camera-space labels in metres."""
    info = json.loads((DEMO_FOLDER / "labels.json").read_text())
    return [{"path": DEMO_FOLDER / s["file"], "K": np.asarray(s["K"], np.float64), "left": bool(s["left"]),
             "keypoints": np.asarray(s["keypoints"], np.float64),
             "vertices": np.asarray(s["vertices"], np.float64)} for s in info["samples"]]


def _errors(prediction, sample) -> dict:
    """Camera-space and aligned errors of one prediction, millimetres."""
    from handrecon import metrics

    kp, gt_kp = prediction.keypoints[None], sample["keypoints"][None]
    v, gt_v = prediction.vertices[None], sample["vertices"][None]
    return {"cs_mpjpe_mm": float(1000 * metrics.mpjpe(kp, gt_kp).mean()),
            "cs_mpvpe_mm": float(1000 * metrics.mpvpe(v, gt_v).mean()),
            "root_error_mm": float(1000 * np.linalg.norm(prediction.root - sample["keypoints"][0])),
            "pa_mpjpe_mm": float(1000 * metrics.pa_mpjpe(kp, gt_kp).mean()),
            "rr_mpjpe_mm": float(1000 * metrics.mpjpe(kp - kp[:, :1], gt_kp - gt_kp[:, :1]).mean())}


def _summary_sheet(path: Path, overlays: list[np.ndarray], captions: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    rows = (len(overlays) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, overlays, captions):
        ax.imshow(image)
        ax.set_title(caption, fontsize=9)
    fig.suptitle("handrecon demo: bundled model on held-out synthetic images (mesh over image | side view)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path


def _html_page(path: Path, rows: list[dict], model: str) -> Path:
    cells = "\n".join(
        f"<tr><td><img src='{html.escape(r['overlay'])}' height='240'></td><td><pre>{html.escape(r['text'])}</pre>"
        f"<a href='{html.escape(r['obj'])}'>OBJ</a> <a href='{html.escape(r['json'])}'>JSON</a></td></tr>"
        for r in rows)
    page = (f"<!doctype html><meta charset='utf-8'><title>handrecon demo</title>"
            f"<h1>handrecon demo</h1><p>Model: {html.escape(model)}. Camera-space errors against the labels of "
            f"held-out synthetic images.</p><table>{cells}</table>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path


def _extras(out: Path, quiet: bool) -> dict:
    """The open hand's named poses (OBJ + contact sheet) and a sheet of synthetic training samples."""
    from handrecon.hand import POSE_NAMES, load_hand_model
    from handrecon.mesh import save_mesh
    from handrecon.render import contact_sheet
    from handrecon.synth import SceneGenerator
    from handrecon.synth.preview import sample_sheet

    hand = load_hand_model("open")
    with torch.no_grad():
        result = hand(torch.stack([hand.named_pose(name) for name in POSE_NAMES]))
    faces = hand.faces.numpy()
    poses = out / "poses"
    poses.mkdir(parents=True, exist_ok=True)
    for name, verts in zip(POSE_NAMES, result.vertices.numpy()):
        save_mesh(poses / f"hand_{name}.obj", verts, faces)
    sheet = out / "contact_sheet.png"
    contact_sheet(sheet, list(result.vertices.numpy()), faces, titles=list(POSE_NAMES),
                  views=("back", "palm", "three_quarter"))
    generator = SceneGenerator(seed=0)
    samples = [generator.generate([i])[0] for i in tqdm(range(12), desc="synthetic samples", disable=quiet)]
    return {"contact_sheet": sheet, "synthetic_samples": sample_sheet(out / "synthetic_samples.png", samples)}


def run_demo(out_dir="outputs/demo", quiet: bool = False, runtime: str = "torch", extras: bool = True) -> dict:
    """Predict the bundled demo images with the bundled model into ``out_dir``; returns paths and errors:
    ``{"predictions": [{stem, files, errors, mode}], "summary": PNG, "html": page, "model": name, "mean": {...}}``."""
    from handrecon.predict import Predictor, save_overlay, write_prediction

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.from_pretrained(runtime=runtime)
    model_name = predictor.name
    records, overlays, captions, rows = [], [], [], []
    for sample in tqdm(demo_samples(), desc="demo images", disable=quiet):
        image = cv2.cvtColor(cv2.imread(str(sample["path"])), cv2.COLOR_BGR2RGB)
        prediction = predictor.predict(image, K=sample["K"], left=sample["left"])
        errors = _errors(prediction, sample)
        stem = sample["path"].stem
        files = write_prediction(prediction, out, stem, extra={"errors_mm": errors})
        files["png"] = save_overlay(out / f"{stem}.png", image, prediction)
        overlays.append(cv2.cvtColor(cv2.imread(str(files["png"])), cv2.COLOR_BGR2RGB))
        side = "left" if sample["left"] else "right"
        text = (f"{stem} ({side}, root by {prediction.mode}): CS-MPJPE {errors['cs_mpjpe_mm']:.0f} mm, "
                f"root {errors['root_error_mm']:.0f} mm, PA-MPJPE {errors['pa_mpjpe_mm']:.1f} mm")
        captions.append(text)
        rows.append({"overlay": files["png"].name, "obj": files["obj"].name, "json": files["json"].name,
                     "text": text})
        records.append({"stem": stem, "files": files, "errors": errors, "mode": prediction.mode})
    mean = {k: float(np.mean([r["errors"][k] for r in records])) for k in records[0]["errors"]}
    result = {"predictions": records, "model": model_name, "mean": mean,
              "summary": _summary_sheet(out / "summary.png", overlays, captions),
              "html": _html_page(out / "index.html", rows, model_name)}
    if extras:
        result.update(_extras(out, quiet))
    return result
