"""How well each root method can do with perfect inputs: the camera-space root registered from a set's own
labels (the ground-truth root-relative mesh and keypoints, the labelled 2D keypoints and mask), grouped by
occlusion. Any error left is the method's, not a network's.

    .venv/bin/python scripts/root_oracle.py data/synth-eval-s7        # masks of the visible hand
    .venv/bin/python scripts/root_oracle.py data/synth-eval-s7-full   # masks of the full hand (--mask full)

The second set is the first rendered with ``handrecon synth ... --mask full`` (same seed, same images). On the
visible masks the 1D root of an occluded hand is far off even from perfect labels: the occluder cuts the
silhouette, the whole projected mesh no longer matches it, and the solve moves the hand away.

    .venv/bin/python scripts/root_oracle.py data/synth-eval-s7-full --size mean

``--size mean`` rescales each labelled mesh (and its keypoints) about the root to the set's mean hand size
(size: mean keypoint distance from the root) before registering: the labelled shape at the wrong size. A
single image does not tell a small near hand from a large far one, so this is the root error that remains for
a network that gets every joint angle right but cannot see the hand's size.

    .venv/bin/python scripts/root_oracle.py data/synth-eval-s7-full --size predicted \
        --pred outputs/final/eval_bundled_full/pred.json

``--size predicted`` scales each labelled mesh to the size of a model's prediction of the same image (the
``pred.json`` that ``handrecon eval`` writes): the root error that the predicted size alone would cause. Close
to the ``mean`` row, the model does not see size; below it, it does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METHODS = ("2d", "1d", "adaptive")
SIZES = ("labelled", "mean", "predicted")


def hand_sizes(keypoints: np.ndarray) -> np.ndarray:
    """(N,21,3) root-relative keypoints -> (N,) mean distance of the keypoints from the root."""
    return np.linalg.norm(keypoints, axis=-1)[:, 1:].mean(axis=-1)


def predicted_sizes(pred_json: str) -> np.ndarray:
    """(N,) hand sizes of the keypoints in a FreiHAND-format ``pred.json`` ([keypoints, vertices])."""
    from handrecon.evaluate import read_pred_json

    try:
        keypoints, _ = read_pred_json(pred_json)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return hand_sizes(keypoints - keypoints[:, :1])


def oracle_root_errors(data: str, split: str = "evaluation", num_axes: int = 12, size: str = "labelled",
                       pred: str | None = None) -> dict[str, np.ndarray]:
    """Per-sample root errors (metres) of each of :data:`METHODS` registered from the labels of ``data``;
    ``size="mean"`` first scales every hand to the set's mean size, ``size="predicted"`` to the size of the
    prediction in ``pred`` (a ``pred.json``; see the module docstring). Also returns the hand sizes (metres)
    as labelled (``size_labelled``) and as registered (``size_used``)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if (size == "predicted") != (pred is not None):
        raise ValueError(f"pred (a pred.json) is needed with size='predicted' and only then; got size={size!r}, "
                         f"pred={pred!r}")
    from handrecon.data import FreiHAND
    from handrecon.registration import register_root

    dataset = FreiHAND(data, split)
    V, kp, uv, K, masks, truth = [], [], [], [], [], []
    for i in range(len(dataset)):
        s = dataset[i]
        if not (s["has_vertices"] and s["has_mask"]):
            raise SystemExit(f"{data} ({split}) sample {i} has no {'mesh' if not s['has_vertices'] else 'mask'}")
        root = s["keypoints"][0]
        truth.append(root)
        V.append(s["vertices"] - root)
        kp.append(s["keypoints"] - root)
        uv.append(s["keypoints_2d"])
        K.append(s["K"])
        masks.append(s["mask"].astype(bool))
    V, kp = np.stack(V).astype(np.float64), np.stack(kp).astype(np.float64)
    labelled = hand_sizes(kp)
    used = labelled
    if size != "labelled":
        used = np.full_like(labelled, labelled.mean()) if size == "mean" else predicted_sizes(pred)
        if len(used) != len(labelled):
            raise SystemExit(f"{pred} holds {len(used)} predictions, {data} ({split}) {len(labelled)} samples")
        factor = (used / labelled)[:, None, None]
        V, kp = V * factor, kp * factor
    result = register_root(V, kp, np.stack(uv).astype(np.float64), np.stack(K).astype(np.float64),
                           silhouette=masks, num_axes=num_axes)
    truth = np.stack(truth)
    errors = {name: np.linalg.norm(np.asarray(root) - truth, axis=-1)
              for name, root in zip(METHODS, (result.root_2d, result.root_1d, result.root))}
    return dict(errors, size_labelled=labelled, size_used=used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="a synthetic set written by handrecon synth (FreiHAND layout)")
    parser.add_argument("--split", default="evaluation")
    parser.add_argument("--num-axes", type=int, default=12)
    parser.add_argument("--size", choices=SIZES, default="labelled",
                        help="the labelled hand size, every hand scaled to the set's mean, or to the size of the "
                             "prediction in --pred (default labelled)")
    parser.add_argument("--pred", help="with --size predicted: the pred.json of handrecon eval on DATA")
    args = parser.parse_args()
    try:
        errors = oracle_root_errors(args.data, args.split, args.num_axes, args.size, args.pred)
    except ValueError as exc:  # --size predicted without --pred, or --pred without it
        parser.error(str(exc))
    meta = json.loads((Path(args.data) / f"{args.split}_meta.json").read_text())
    occluded = np.array([bool(m["occluded"]) for m in meta])
    print(f"Root from the labels of {args.data} ({args.split}), A = {args.num_axes}, {args.size} hand size: "
          "mean (median) error in mm")
    print("| root | all | occluder | no occluder |\n|---|---|---|---|")
    for name in METHODS:
        e = errors[name] * 1000
        cells = [f"{e[sel].mean():.1f} ({np.median(e[sel]):.1f})" if sel.any() else "-"
                 for sel in (np.ones_like(occluded), occluded, ~occluded)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    labelled, used = errors["size_labelled"], errors["size_used"]
    print(f"hand size (mean keypoint distance from the root): labelled {labelled.mean() * 1000:.1f} mm, "
          f"spread {labelled.std() / labelled.mean():.1%}")
    if args.size == "predicted":
        ratio = used / labelled
        print(f"predicted size / labelled: mean {ratio.mean():.3f}, mean |ratio - 1| "
              f"{np.abs(ratio - 1).mean():.1%}; correlation of the two sizes {np.corrcoef(labelled, used)[0, 1]:.2f}")


if __name__ == "__main__":
    main()
