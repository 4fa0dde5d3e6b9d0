"""Bundle a trained run as the package's default model (float16 safetensors + JSON in handrecon/assets/models).

    .venv/bin/python scripts/bundle_default_model.py runs/mobrecon-ghost-sil-s2/model \
        --stage configs/mobrecon-ghost-sil-synth.yaml 76800 49 "2 training threads + 1 rendering worker" \
        --stage configs/mobrecon-ghost-sil-synth-stage2.yaml 160000 133 "1 training thread + 1 rendering worker"

Each ``--stage CONFIG SAMPLES MINUTES HOW`` is one training run of the recipe, in order (a later stage starts
from the earlier one's weights with ``model.init``); the JSON records them and their totals.
"""

from __future__ import annotations

import argparse

from handrecon.models.pretrained import DEFAULT_MODEL, bundle_model

HARDWARE = "2-core x86-64 CPU (AMD EPYC or Intel Xeon: the project machine varies), no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="PATH of a saved model (PATH.safetensors + PATH.json)")
    parser.add_argument("--name", default=DEFAULT_MODEL)
    parser.add_argument("--stage", nargs=4, action="append", required=True,
                        metavar=("CONFIG", "SAMPLES", "MINUTES", "HOW"),
                        help="one training stage: config, samples seen, wall time (min), threads/workers")
    parser.add_argument("--hardware", default=HARDWARE)
    parser.add_argument("--description", default="MobRecon GhostStack + silhouette head (template residual, "
                        "global rotation), trained on synthetic hands only")
    parser.add_argument("--crop-scale", type=float, default=1.4, help="box growth the model was trained for")
    args = parser.parse_args()
    stages = []
    for config, samples, minutes, how in args.stage:
        try:
            stages.append({"config": config, "samples_seen": int(samples), "wall_time_min": float(minutes),
                           "hardware": f"{args.hardware}; {how}"})
        except ValueError:
            parser.error(f"--stage {config}: SAMPLES must be a whole number and MINUTES a number, got "
                         f"{samples!r} and {minutes!r}")
    extra = {"crop_scale": args.crop_scale,
             "recipe": {"stages": stages, "samples_seen": sum(s["samples_seen"] for s in stages),
                        "wall_time_min": sum(s["wall_time_min"] for s in stages)},
             "held_out": "see docs/RESULTS.md"}
    path = bundle_model(args.weights, args.name, args.description, extra)
    print(f"wrote {path} and {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
