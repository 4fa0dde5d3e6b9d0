"""CMR's semantic-aggregation ablation (Table 3) at a reduced scale: train one model per row, score each.

    .venv/bin/python scripts/aggregation_ablation.py --out runs/table3 [--jobs 2] [--eval-data data/synth-eval-s7]

Trains ``configs/cmr-aggregation-ablation-cpu.yaml`` (see its header for the scale and the training set it
expects) once per row of Table 3 -- heatmaps as they are, then part, level, tip, part + tip and all three group
kinds added -- plus a second training seed of two rows, so the table can be read against the seed-to-seed
spread. Each run is ``handrecon train`` into ``OUT/<row>``, then ``handrecon eval`` on the held-out split
(box crop x 1.4). Runs already finished in ``OUT`` are reused, so an interrupted ablation resumes. Writes
``OUT/table3.md`` and ``OUT/table3.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cmr-aggregation-ablation-cpu.yaml"

#: Table 3's rows: name -> (aggregation, groups, training seed).
ROWS = {
    "maps": ("maps", ["tip"], 0),
    "part": ("group", ["part"], 0),
    "level": ("group", ["level"], 0),
    "tip": ("group", ["tip"], 0),
    "part+tip": ("group", ["part", "tip"], 0),
    "part+level+tip": ("group", ["part", "level", "tip"], 0),
    "maps-seed1": ("maps", ["tip"], 1),
    "part+tip-seed1": ("group", ["part", "tip"], 1),
}
SCORES = ("pa_mpjpe_mm", "pa_mpvpe_mm", "pa_f5", "pa_f15", "kp2d_error_px")


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {result.returncode}; see {log}")


def train_and_score(row: str, out: Path, eval_data: str, handrecon: str) -> dict:
    """Train one row (unless done) and score it (unless scored); returns its scores.json."""
    aggregation, groups, seed = ROWS[row]
    run = out / row
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "model.safetensors").exists():
        resume = ["--resume"] if (run / "checkpoint").exists() else []
        _run([handrecon, "train", str(CONFIG), f"model.overrides.aggregation={aggregation}",
              f"model.overrides.groups=[{','.join(groups)}]", f"train.seed={seed}", "--out", str(run), *resume],
             run / "train.out")
    scores = run / "eval" / "scores.json"
    if not scores.exists():
        _run([handrecon, "eval", str(run / "model"), "--data", eval_data, "--crop", "box", "--crop-scale", "1.4",
              "--out", str(run / "eval"), "--quiet"], run / "eval.out")
    return json.loads(scores.read_text())


def table(results: dict) -> str:
    """Markdown table: one line per row, then the spread of the two rows trained with two seeds."""
    lines = ["| row (heatmaps + groups) | seed | PA-MPJPE (mm) | PA-MPVPE (mm) | F@5 / F@15 (aligned) | 2D (px) |",
             "|---|---|---|---|---|---|"]
    for row, s in results.items():
        lines.append(f"| {row.removesuffix('-seed1')} | {ROWS[row][2]} | {s['pa_mpjpe_mm']:.2f} | "
                     f"{s['pa_mpvpe_mm']:.2f} | {s['pa_f5']:.3f} / {s['pa_f15']:.3f} | {s['kp2d_error_px']:.2f} |")
    spreads = [abs(results[row]["pa_mpjpe_mm"] - results[row.removesuffix("-seed1")]["pa_mpjpe_mm"])
               for row in results if row.endswith("-seed1") and row.removesuffix("-seed1") in results]
    if spreads:
        lines.append("")
        lines.append(f"Seed-to-seed PA-MPJPE difference of the same row: {', '.join(f'{d:.2f}' for d in spreads)} mm "
                     f"(mean {statistics.fmean(spreads):.2f} mm).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the runs and the table")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (each on one thread)")
    parser.add_argument("--eval-data", default="data/synth-eval-s7", help="held-out FreiHAND-layout folder")
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS), help="rows to run")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    out = Path(args.out)
    handrecon = str(Path(sys.executable).with_name("handrecon"))
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {row: pool.submit(train_and_score, row, out, args.eval_data, handrecon) for row in args.rows}
        results, failed = {}, []
        for row, future in futures.items():
            try:
                results[row] = future.result()
            except RuntimeError as error:
                failed.append(row)
                print(f"{row}: {error}", file=sys.stderr)
    text = table(results)
    (out / "table3.md").write_text(text + "\n")
    (out / "table3.json").write_text(json.dumps({row: {k: s[k] for k in SCORES} for row, s in results.items()},
                                                indent=2) + "\n")
    print(text)
    if failed:
        sys.exit(f"failed rows: {', '.join(failed)}")


if __name__ == "__main__":
    main()
