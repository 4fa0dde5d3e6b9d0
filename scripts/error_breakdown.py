"""Where a model's errors lie on a synthetic evaluation set: quantiles and means of one per-sample error
(PA-MPJPE by default; ``--column root_error_mm`` for the camera-space root) by occlusion and by the share of
visible keypoints, from the per-sample scores of ``handrecon eval`` and the set's scene metadata.

    .venv/bin/handrecon eval handrecon/assets/models/mobrecon-ghost-sil-synth --data data/synth-eval-s7 \\
        --crop box --crop-scale 1.4 --out outputs/final/eval_bundled
    .venv/bin/python scripts/error_breakdown.py outputs/final/eval_bundled/per_sample.csv \\
        data/synth-eval-s7/evaluation_meta.json [--column root_error_mm]

``evaluation_meta.json`` is written by ``handrecon synth`` (per sample: ``occluded``, ``visible`` per keypoint).
"""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np

VISIBLE_BINS = ((0.0, 0.5), (0.5, 0.75), (0.75, 1.0), (1.0, 1.0))


def breakdown(per_sample_csv: str, meta_json: str, threshold_mm: float = 12.0,
              column: str = "pa_mpjpe_mm") -> list[tuple[str, int, float]]:
    """Rows (group, number of samples, mean of ``column`` in mm, or a fraction for the share under
    ``threshold_mm``)."""
    with open(per_sample_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and column not in rows[0]:
        raise SystemExit(f"{per_sample_csv} has no column {column!r}; it has {', '.join(rows[0])}")
    with open(meta_json) as f:
        meta = json.load(f)
    index = np.array([int(r["index"]) for r in rows])
    err = np.array([float(r[column]) for r in rows])
    if index.size == 0 or index.max() >= len(meta):
        raise SystemExit(f"{per_sample_csv}: {len(rows)} samples, indices beyond the {len(meta)} of {meta_json}")
    occluded = np.array([bool(meta[i]["occluded"]) for i in index])
    visible = np.array([float(np.mean(meta[i]["visible"])) for i in index])

    def group(name: str, sel: np.ndarray) -> tuple[str, int, float]:
        return name, int(sel.sum()), float(err[sel].mean()) if sel.any() else float("nan")

    out = [group("all: mean", np.ones_like(occluded)), ("all: median", err.size, float(np.median(err))),
           (f"all: share under {threshold_mm:g} mm", err.size, float((err < threshold_mm).mean())),
           group("occluder", occluded), group("no occluder", ~occluded)]
    for lo, hi in VISIBLE_BINS:
        sel = visible == 1.0 if lo == hi else (visible >= lo) & (visible < hi)
        out.append(group("all keypoints visible" if lo == hi else f"visible keypoints {lo:.0%}-{hi:.0%}", sel))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("per_sample", help="per_sample.csv written by handrecon eval")
    parser.add_argument("meta", help="<split>_meta.json of the synthetic set")
    parser.add_argument("--column", default="pa_mpjpe_mm", help="per-sample error to break down, in mm "
                        "(default: pa_mpjpe_mm; e.g. root_error_mm, cs_mpjpe_mm)")
    parser.add_argument("--threshold", type=float, default=12.0, help="the share under this many mm (default 12)")
    args = parser.parse_args()
    print(f"| group | samples | {args.column} |\n|---|---|---|")
    for name, n, value in breakdown(args.per_sample, args.meta, args.threshold, args.column):
        print(f"| {name} | {n} | {value:.3f} |" if "share" in name else f"| {name} | {n} | {value:.1f} |")


if __name__ == "__main__":
    main()
