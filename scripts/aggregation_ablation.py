"""CMR's semantic-aggregation ablation (Table 3) at a reduced scale: train one model per row, score each.

    .venv/bin/python scripts/aggregation_ablation.py --out runs/table3 [--jobs 2] [--eval-data data/synth-eval-s7]

Trains ``configs/cmr-aggregation-ablation-cpu.yaml`` (see its header for the scale and the training set it
expects) once per row of Table 3 -- heatmaps as they are, then part, level, tip, part + tip and all three group
kinds added -- each with two training seeds, so the table can be read against the seed-to-seed spread. Each
run is ``handrecon train`` into ``OUT/<row>-seed<seed>``, then ``handrecon eval`` on the held-out split (box
crop x 1.4). Runs already finished in ``OUT`` are reused, so an interrupted ablation resumes. Writes
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

#: Table 3's rows: name -> (aggregation, groups); "maps" is the heatmaps as they are.
SETTINGS = {
    "maps": ("maps", ["tip"]),
    "part": ("group", ["part"]),
    "level": ("group", ["level"]),
    "tip": ("group", ["tip"]),
    "part+tip": ("group", ["part", "tip"]),
    "part+level+tip": ("group", ["part", "level", "tip"]),
}
SEEDS = (0, 1)
SCORES = ("pa_mpjpe_mm", "pa_mpvpe_mm", "pa_f5", "pa_f15", "kp2d_error_px")


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {result.returncode}; see {log}")


def overrides(setting: str, seed: int) -> list[str]:
    """The ``KEY=VALUE`` overrides of :data:`CONFIG` that train ``setting`` with training seed ``seed``."""
    aggregation, groups = SETTINGS[setting]
    return [f"model.overrides.aggregation={aggregation}", f"model.overrides.groups=[{','.join(groups)}]",
            f"train.seed={seed}"]


def train_and_score(setting: str, seed: int, out: Path, eval_data: str, handrecon: str) -> dict:
    """Train one setting with one seed into ``OUT/<setting>-seed<seed>`` (unless done) and score it (unless
    scored); returns its scores.json."""
    run = out / f"{setting}-seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "model.safetensors").exists():
        resume = ["--resume"] if (run / "checkpoint").exists() else []
        _run([handrecon, "train", str(CONFIG), *overrides(setting, seed), "--out", str(run), *resume],
             run / "train.out")
    scores = run / "eval" / "scores.json"
    if not scores.exists():
        _run([handrecon, "eval", str(run / "model"), "--data", eval_data, "--crop", "box", "--crop-scale", "1.4",
              "--out", str(run / "eval"), "--quiet"], run / "eval.out")
    return json.loads(scores.read_text())


def table(results: dict) -> str:
    """Markdown table from {(setting, seed): scores}: one line per setting with each seed's PA-MPJPE / PA-MPVPE
    and the means over its seeds."""
    settings: dict[str, list[dict]] = {}
    for (setting, _), scores in results.items():
        settings.setdefault(setting, []).append(scores)

    def mean(runs, key):
        return statistics.fmean(r[key] for r in runs)

    lines = ["| heatmaps + groups | PA-MPJPE by seed (mm) | mean | PA-MPVPE by seed (mm) | mean | "
             "F@5 / F@15 (aligned, mean) | 2D (px, mean) |", "|---|---|---|---|---|---|---|"]
    for name, runs in settings.items():
        by_seed = {k: " / ".join(f"{r[k]:.2f}" for r in runs) for k in ("pa_mpjpe_mm", "pa_mpvpe_mm")}
        lines.append(f"| {name} | {by_seed['pa_mpjpe_mm']} | {mean(runs, 'pa_mpjpe_mm'):.2f} | "
                     f"{by_seed['pa_mpvpe_mm']} | {mean(runs, 'pa_mpvpe_mm'):.2f} | {mean(runs, 'pa_f5'):.3f} / "
                     f"{mean(runs, 'pa_f15'):.3f} | {mean(runs, 'kp2d_error_px'):.2f} |")
    spreads = [max(r["pa_mpjpe_mm"] for r in runs) - min(r["pa_mpjpe_mm"] for r in runs)
               for runs in settings.values() if len(runs) > 1]
    if spreads:
        lines.append("")
        lines.append(f"Seed-to-seed PA-MPJPE range of the same setting: {min(spreads):.2f}-{max(spreads):.2f} mm "
                     f"(mean {statistics.fmean(spreads):.2f} mm over {len(spreads)} settings).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the runs and the table")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (each on one thread)")
    parser.add_argument("--eval-data", default="data/synth-eval-s7", help="held-out FreiHAND-layout folder")
    parser.add_argument("--rows", nargs="+", choices=tuple(SETTINGS), default=list(SETTINGS), help="rows to run")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="training seeds per row")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    out = Path(args.out)
    handrecon = str(Path(sys.executable).with_name("handrecon"))
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {(row, seed): pool.submit(train_and_score, row, seed, out, args.eval_data, handrecon)
                   for row in args.rows for seed in args.seeds}
        results, failed = {}, []
        for (row, seed), future in futures.items():
            try:
                results[row, seed] = future.result()
            except RuntimeError as error:
                failed.append(f"{row} (seed {seed})")
                print(f"{row}, seed {seed}: {error}", file=sys.stderr)
    text = table(results)
    (out / "table3.md").write_text(text + "\n")
    (out / "table3.json").write_text(json.dumps({f"{row}-seed{seed}": {k: s[k] for k in SCORES}
                                                 for (row, seed), s in results.items()}, indent=2) + "\n")
    print(text)
    if failed:
        sys.exit(f"failed rows: {', '.join(failed)}")


if __name__ == "__main__":
    main()
