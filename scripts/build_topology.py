#!/usr/bin/env python
"""Build the bundled mesh-hierarchy asset of the open hand.

    python scripts/build_topology.py            # writes handrecon/assets/open_hand_topology.safetensors
    python scripts/build_topology.py --check    # checks a rebuild reproduces the shipped asset bit for bit

The asset holds the levels (778, 389, 195, 98, 49 vertices), the down/up-sampling matrices and the spirals
of levels 0-3 at lengths 9 and 27, for the template of ``load_hand_model("open")``; ``load_topology(hand)``
uses it whenever the template's SHA-256 matches. Rebuild it whenever the open hand's template changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUTPUT = ROOT / "handrecon" / "assets" / "open_hand_topology.safetensors"


def _same(a, b) -> list[str]:
    """Names of the parts in which two topologies differ (empty if bit-identical)."""
    import torch

    diffs = []
    if a.template_hash != b.template_hash:
        diffs.append("template_hash")
    for name in ("vertices", "faces"):
        for l, (x, y) in enumerate(zip(getattr(a, name), getattr(b, name))):
            if x.shape != y.shape or not torch.equal(x, y):
                diffs.append(f"{name}[{l}]")
    for name in ("down", "up"):
        for l, (x, y) in enumerate(zip(getattr(a, name), getattr(b, name))):
            x, y = x.coalesce(), y.coalesce()
            if x.shape != y.shape or not (
                torch.equal(x.indices(), y.indices()) and torch.equal(x.values(), y.values())
            ):
                diffs.append(f"{name}[{l}]")
    for key in sorted(set(a.stored_spirals) | set(b.stored_spirals)):
        if key not in a.stored_spirals or key not in b.stored_spirals:
            diffs.append(f"spiral{key} (missing)")
        elif not torch.equal(a.spiral(*key), b.spiral(*key)):
            diffs.append(f"spiral{key}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="asset to write")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 unless the asset at --output is reproduced"
    )
    args = parser.parse_args(argv)

    from handrecon.hand import load_hand_model
    from handrecon.mesh import build_topology, load_topology_file, reconstruction_errors, save_topology

    hand = load_hand_model("open")
    start = time.perf_counter()
    topo = build_topology(hand.v_template, hand.faces)
    elapsed = time.perf_counter() - start
    errors = reconstruction_errors(topo, hand.v_template)
    print(f"template   {topo.template_hash}")
    print(f"vertices   {topo.num_vertices}")
    print(f"faces      {[int(f.shape[0]) for f in topo.faces]}")
    print(f"spirals    {topo.stored_spirals}")
    print(f"built in   {elapsed:.1f} s")
    print("mean vertex error of up(down(x)) on the template (mm):")
    for l, e in enumerate(errors.per_level):
        print(f"  level {l} -> {l + 1} -> {l}: {e * 1000:.3f}")
    print(f"  all levels (down {len(topo.down)}x, up {len(topo.up)}x): {errors.all_levels * 1000:.3f}")

    if args.check:
        if not args.output.is_file():
            print(f"no asset at {args.output}", file=sys.stderr)
            return 1
        diffs = _same(topo, load_topology_file(args.output))
        if diffs:
            print(f"{args.output} differs from a fresh build in: {', '.join(diffs)}", file=sys.stderr)
            return 1
        print(f"{args.output} is reproduced bit for bit")
        return 0
    save_topology(topo, args.output)
    print(f"wrote      {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
