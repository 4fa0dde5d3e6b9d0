"""Learning curve of a training run: score saved checkpoints on a held-out set and plot the errors against
the number of training samples seen.

    .venv/bin/python scripts/learning_curve.py runs/curve data/synth-eval-s7-300 \
        docs/images/learning_curve.png                                              # stage 1
    cp docs/images/learning_curve.json docs/images/learning_curve_stage1.json       # the curve so far
    .venv/bin/python scripts/learning_curve.py runs/curve-s2 data/synth-eval-s7-300 \
        docs/images/learning_curve.png --every 1000 --after docs/images/learning_curve_stage1.json

and so on: before stage N's run, the curve of stages 1 to N-1 is kept as ``learning_curve_stage{N-1}.json``
and stage N's checkpoints (``runs/curve-sN``) are added after it (``--every 1000`` for stages 2 to 6,
``--every 2000`` from stage 7 on). Each snapshot is the start of ``learning_curve.json``, so docs/images keeps
only the last one (the next stage's ``--after``); any stage's curve can be cut from ``learning_curve.json``
without re-scoring.

CHECKPOINTS is a folder of ``step_N.safetensors`` + ``step_N.json`` (copies of a run's ``checkpoint/model.*``
taken as training went); each is evaluated with ``handrecon.evaluate.evaluate`` (box crops x 1.4 around the
labelled hand, ground-truth root so the curve measures the root-relative mesh) and the table is printed and
written next to the PNG as JSON. Scores are cached per checkpoint (``step_N.scores.json``), so the script can
run again as a run goes on; ``--every K`` scores only steps that are multiples of K. ``--after PREV.json`` puts
the earlier stages' curve (this script's JSON) first, counts this run's samples after it and numbers this run
as the next stage (a grey line marks where each stage began). The dashed lines
are the floor of a constant relaxed hand on the same images (:mod:`handrecon.baselines`).

The script ends with a projection: a least-squares line of PA-MPJPE against the logarithm of samples seen,
through the last row of each stage from ``--fit-from`` on (stage 1, far steeper, is left out by default), and
the samples at which that line reaches ``--target`` mm. It is an extrapolation of a curve that has been
flattening, so it is an optimistic estimate of what the same recipe would need, not a promise.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
from pathlib import Path

from handrecon.evaluate import evaluate


def score_checkpoints(folder: Path, data: str, crop_scale: float, every: int, offset: int = 0,
                      stage: int = 1) -> list[dict]:
    """One row per ``step_N`` checkpoint in ``folder`` (multiples of ``every``), samples counted from ``offset``,
    each marked as training stage ``stage``."""
    steps = sorted(int(re.match(r"step_(\d+)", p.stem).group(1)) for p in folder.glob("step_*.safetensors"))
    steps = [s for s in steps if s % every == 0]
    if not steps:
        raise SystemExit(f"no step_N.safetensors in {folder}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for step in steps:
            cached = folder / f"step_{step}.scores.json"
            if cached.exists():
                row = json.loads(cached.read_text())
            else:
                info = json.loads((folder / f"step_{step}.json").read_text())
                batch = info["training_config"]["data"]["batch_size"]
                s = evaluate(folder / f"step_{step}", data, out=Path(tmp) / str(step), root="gt", crop="box",
                             crop_scale=crop_scale, progress=False)
                row = {"step": step, "samples": step * batch, "pa_mpjpe_mm": s["pa_mpjpe_mm"],
                       "pa_mpvpe_mm": s["pa_mpvpe_mm"], "kp2d_error_px": s["kp2d_error_px"],
                       "f5": s["f5"], "f15": s["f15"]}
                cached.write_text(json.dumps(row))
            row = dict(row, samples=row["samples"] + offset, stage_samples=row["samples"], stage=stage)
            rows.append(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints")
    parser.add_argument("data", help="a held-out FreiHAND-layout folder")
    parser.add_argument("out_png")
    parser.add_argument("--crop-scale", type=float, default=1.4)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--after", help="the JSON of an earlier stage's curve, drawn first")
    parser.add_argument("--target", type=float, default=12.0,
                        help="PA-MPJPE (mm) to project the samples for (log-linear fit, default 12)")
    parser.add_argument("--fit-from", type=int, default=2, help="first stage whose end enters the fit (default 2)")
    args = parser.parse_args()
    before = json.loads(Path(args.after).read_text()) if args.after else []
    offset = before[-1]["samples"] if before else 0
    stage = stage_of(before[-1]) + 1 if before else 1
    rows = before + score_checkpoints(Path(args.checkpoints), args.data, args.crop_scale, args.every, offset, stage)
    from handrecon.baselines import constant_hand_scores
    from handrecon.data import FreiHAND

    floor = constant_hand_scores(FreiHAND(args.data, "evaluation"), "relaxed")
    _plot(args.out_png, rows, args.data, floor)
    Path(args.out_png).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    ends = [r for r in stage_ends(rows) if stage_of(r) >= args.fit_from]
    if len(ends) >= 2:
        slope, intercept = fit_log_samples([r["samples"] for r in ends], [r["pa_mpjpe_mm"] for r in ends])
        reach = samples_to_reach(slope, intercept, args.target)
        print(f"log-linear fit of PA-MPJPE over the ends of stages {stage_of(ends[0])}-{stage_of(ends[-1])}: "
              f"{-slope * math.log(2):.2f} mm per doubling of samples seen; {args.target:g} mm at "
              + (f"{reach / 1e6:.1f} M samples" if reach else "no finite sample count (the fit does not fall)"))


def stage_of(row: dict) -> int:
    """The training stage a curve row belongs to (rows written before stages were numbered: 1 without a
    ``stage_samples`` count, 2 with one)."""
    return row.get("stage", 2 if "stage_samples" in row else 1)


def stage_starts(rows: list[dict]) -> list[tuple[int, int]]:
    """(stage, samples seen when it began) for each stage after the first: the previous row's total."""
    return [(stage_of(row), prev["samples"]) for prev, row in zip(rows, rows[1:]) if stage_of(row) != stage_of(prev)]


def stage_ends(rows: list[dict]) -> list[dict]:
    """The last row of each stage, in order."""
    return [row for row, nxt in zip(rows, rows[1:] + [None]) if nxt is None or stage_of(nxt) != stage_of(row)]


def fit_log_samples(samples: list[float], errors: list[float]) -> tuple[float, float]:
    """Least-squares ``error = slope * ln(samples) + intercept``; returns (slope, intercept)."""
    if len(samples) != len(errors) or len(samples) < 2:
        raise ValueError(f"fit_log_samples: need >= 2 (samples, error) pairs of equal length, got "
                         f"{len(samples)} samples and {len(errors)} errors")
    if min(samples) <= 0:
        raise ValueError(f"fit_log_samples: samples must be positive, got {min(samples)}")
    xs = [math.log(s) for s in samples]
    mx, my = sum(xs) / len(xs), sum(errors) / len(errors)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("fit_log_samples: all sample counts are equal; nothing to fit")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, errors)) / sxx
    return slope, my - slope * mx


def samples_to_reach(slope: float, intercept: float, target: float) -> float | None:
    """Samples at which the fitted line reaches ``target``; None if it never falls to it (slope >= 0)."""
    if slope >= 0:
        return None
    return math.exp((target - intercept) / slope)


def _plot(path, rows, data, floor: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["samples"] / 1000 for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for key, label in (("pa_mpjpe_mm", "PA-MPJPE (mm)"), ("pa_mpvpe_mm", "PA-MPVPE (mm)"),
                       ("kp2d_error_px", "2D keypoint error (px)")):
        line, = ax.plot(x, [r[key] for r in rows], marker="o", label=label)
        if key in floor:
            ax.axhline(floor[key], color=line.get_color(), ls="--", lw=1)
    ax.plot([], [], "k--", lw=1, label="constant relaxed hand")
    starts = stage_starts(rows)
    if starts:
        ax.plot([], [], color="0.5", lw=1, label="start of stage N")
    for stage, start in starts:
        # the number alone: later stages are close together and "stage N" labels would run into each other
        ax.axvline(start / 1000, color="0.5", lw=1)
        ax.text(start / 1000, 0.02, f" {stage}", transform=ax.get_xaxis_transform(), fontsize=8, color="0.4")
    ax.set_xlabel("training samples seen (thousands)")
    ax.set_title(f"held-out synthetic set: {Path(data).name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
