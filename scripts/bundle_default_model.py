"""Bundle a trained run as the package's default model (float16 safetensors + JSON in handrecon/assets/models).

    .venv/bin/python scripts/bundle_default_model.py runs/mobrecon-ghost-sil/model --samples 76800 --minutes 49
"""

from __future__ import annotations

import argparse

from handrecon.models.pretrained import DEFAULT_MODEL, bundle_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="PATH of a saved model (PATH.safetensors + PATH.json)")
    parser.add_argument("--name", default=DEFAULT_MODEL)
    parser.add_argument("--config", default="configs/mobrecon-ghost-sil-synth.yaml")
    parser.add_argument("--samples", type=int, required=True, help="training samples seen")
    parser.add_argument("--minutes", type=float, required=True, help="training wall time")
    parser.add_argument("--crop-scale", type=float, default=1.4, help="box growth the model was trained for")
    args = parser.parse_args()
    extra = {"crop_scale": args.crop_scale,
             "recipe": {"config": args.config, "samples_seen": args.samples, "wall_time_min": args.minutes,
                        "hardware": "2-core x86-64 CPU (AMD EPYC), no GPU; 2 training threads + 1 rendering worker"},
             "held_out": "see docs/RESULTS.md"}
    path = bundle_model(args.weights, args.name, "MobRecon GhostStack + silhouette head (template residual), "
                        "trained on synthetic hands only", extra)
    print(f"wrote {path} and {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
