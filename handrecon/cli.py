"""The ``handrecon`` command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _cmd_demo(args) -> int:
    from handrecon.demo import run_demo

    paths = run_demo(args.out)
    print(f"wrote {len(paths['meshes'])} meshes (OBJ, metres) to {args.out}/")
    print(f"contact sheet: {paths['contact_sheet']}")
    return 0


def _parse_floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"error: {name} must be comma-separated numbers, got {text!r}") from None


def _cmd_hand(args) -> int:
    import torch

    from handrecon.hand import load_hand_model
    from handrecon.mesh import save_mesh

    try:
        hand = load_hand_model(args.model, path=args.model_path)
        pose = hand.named_pose(args.pose)[None]
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shape = torch.zeros(1, hand.num_shape)
    if args.shape:
        values = _parse_floats(args.shape, "--shape")
        if len(values) > hand.num_shape:
            print(f"error: --shape has {len(values)} values; this hand has {hand.num_shape}", file=sys.stderr)
            return 2
        shape[0, : len(values)] = torch.tensor(values)
    with torch.no_grad():
        out = hand(pose, shape)
    try:
        save_mesh(args.out, out.vertices[0], hand.faces)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({hand.name} hand, pose {args.pose!r}, {hand.num_vertices} vertices, metres)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from handrecon.hand import POSE_NAMES

    parser = argparse.ArgumentParser(
        prog="handrecon",
        description="Camera-space 3D hand mesh recovery from a single RGB image.",
        epilog="Run 'handrecon COMMAND --help' for each command's options and an example.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="pose the bundled open hand and write meshes and a contact sheet",
        description="Pose the bundled open hand in its named poses; write OBJ meshes and a PNG contact sheet.",
        epilog="example: handrecon demo --out outputs/demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.set_defaults(func=_cmd_demo)

    hand = sub.add_parser(
        "hand", help="export the hand model in a named pose and shape as a mesh file",
        description="Export the open hand (or your MANO model) posed and shaped, as OBJ, PLY or GLB.",
        epilog="examples:\n  handrecon hand --pose fist --shape 1.5,0,-1 --out fist.obj\n"
               "  handrecon hand --model mano --model-path MANO_RIGHT.pkl --pose ok --out ok.ply",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    hand.add_argument("--model", default="open", choices=("open", "mano"), help="hand model (default: open)")
    hand.add_argument("--model-path", default=None, help="path to MANO_RIGHT.pkl for --model mano")
    hand.add_argument("--pose", default="flat", choices=POSE_NAMES, help="named pose (default: flat)")
    hand.add_argument("--shape", default="", help="comma-separated shape coefficients (standard deviations)")
    hand.add_argument("--out", required=True, help="output mesh path (.obj, .ply or .glb)")
    hand.set_defaults(func=_cmd_hand)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
