"""Learning curve of a training run: score saved checkpoints on a held-out set and plot the errors against
the number of training samples seen.

    .venv/bin/python scripts/learning_curve.py runs/curve data/synth-eval-s7-300 docs/images/learning_curve.png

CHECKPOINTS is a folder of ``step_N.safetensors`` + ``step_N.json`` (copies of a run's ``checkpoint/model.*``
taken as training went); each is evaluated with ``handrecon.evaluate.evaluate`` (box crops x 1.4 around the
labelled hand, ground-truth root so the curve measures the root-relative mesh) and the table is printed and
written next to the PNG as JSON. Scores are cached per checkpoint (``step_N.scores.json``), so the script can
run again as a run goes on; ``--every K`` scores only steps that are multiples of K.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from handrecon.evaluate import evaluate


def main(checkpoints: str, data: str, out_png: str, crop_scale: float = 1.4, every: int = 1) -> None:
    folder = Path(checkpoints)
    steps = sorted(int(re.match(r"step_(\d+)", p.stem).group(1)) for p in folder.glob("step_*.safetensors"))
    steps = [s for s in steps if s % every == 0]
    if not steps:
        raise SystemExit(f"no step_N.safetensors in {folder}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for step in steps:
            cached = folder / f"step_{step}.scores.json"
            if cached.exists():
                rows.append(json.loads(cached.read_text()))
                continue
            info = json.loads((folder / f"step_{step}.json").read_text())
            batch = info["training_config"]["data"]["batch_size"]
            s = evaluate(folder / f"step_{step}", data, out=Path(tmp) / str(step), root="gt", crop="box",
                         crop_scale=crop_scale, progress=False)
            rows.append({"step": step, "samples": step * batch, "pa_mpjpe_mm": s["pa_mpjpe_mm"],
                         "pa_mpvpe_mm": s["pa_mpvpe_mm"], "kp2d_error_px": s["kp2d_error_px"],
                         "f5": s["f5"], "f15": s["f15"]})
            cached.write_text(json.dumps(rows[-1]))
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()))
    _plot(out_png, rows, data)
    Path(out_png).with_suffix(".json").write_text(json.dumps(rows, indent=1))


def _plot(path, rows, data) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["samples"] / 1000 for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for key, label in (("pa_mpjpe_mm", "PA-MPJPE (mm)"), ("pa_mpvpe_mm", "PA-MPVPE (mm)"),
                       ("kp2d_error_px", "2D keypoint error (px)")):
        ax.plot(x, [r[key] for r in rows], marker="o", label=label)
    ax.set_xlabel("training samples seen (thousands)")
    ax.set_title(f"held-out synthetic set: {Path(data).name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    args = sys.argv[1:]
    every = 1
    if "--every" in args:
        i = args.index("--every")
        every = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3:
        raise SystemExit(__doc__)
    main(*args, every=every)
