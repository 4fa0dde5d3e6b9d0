"""Rebuild the bundled open hand model: handrecon/assets/open_hand.safetensors.

    pip install -e '.[build]'
    python scripts/build_open_hand.py [--out PATH]

Deterministic: the design lives in handrecon/hand/builder.py; this script only runs it and saves.
After rebuilding the hand, rebuild its topology too: python scripts/build_topology.py
"""

import argparse
from pathlib import Path

from handrecon.hand.builder import SHAPE_NAMES, build_open_hand
from handrecon.hand.model import HandModel, describe


def main() -> None:
    default = Path(__file__).resolve().parents[1] / "handrecon" / "assets" / "open_hand.safetensors"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    assets = build_open_hand()
    hand = HandModel(**{k: v for k, v in assets.arrays().items() if k != "parents"}, name="open",
                     shape_names=SHAPE_NAMES)
    hand.save(args.out, extra_metadata=assets.metadata)
    print(f"wrote {args.out}")
    for key, value in describe(hand).items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
