"""Score a constant hand (one named pose of the open hand, the same for every image) on a FreiHAND-layout split.

    .venv/bin/python scripts/template_baseline.py data/synth-eval-s7 [--split evaluation] [--pose relaxed]

The floor a mesh model must beat on the Procrustes-aligned metrics (:mod:`handrecon.baselines`). Prints
PA-MPJPE, PA-MPVPE (mm) and the aligned F@5 / F@15 mm (``pa_f5``, ``pa_f15`` in ``handrecon eval``'s
scores.json) for each pose asked for (``--pose`` may be repeated; default: relaxed, flat, fist).
"""

from __future__ import annotations

import argparse

from handrecon.baselines import constant_hand_scores
from handrecon.data import FreiHAND


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a FreiHAND-layout folder (e.g. written by handrecon synth)")
    parser.add_argument("--split", default="evaluation", choices=("training", "evaluation"))
    parser.add_argument("--pose", action="append", help="a named pose of the open hand (repeatable)")
    args = parser.parse_args()
    dataset = FreiHAND(args.data, args.split)
    print("| constant hand | PA-MPJPE (mm) | PA-MPVPE (mm) | F@5 (aligned) | F@15 (aligned) |")
    print("|---|---|---|---|---|")
    for name in args.pose or ["relaxed", "flat", "fist"]:
        s = constant_hand_scores(dataset, name)
        print(f"| {name} ({s['samples']} samples) | {s['pa_mpjpe_mm']:.1f} | {s['pa_mpvpe_mm']:.1f} | "
              f"{s['pa_f5']:.3f} | {s['pa_f15']:.3f} |")


if __name__ == "__main__":
    main()
