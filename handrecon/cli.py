"""The ``handrecon`` command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _cmd_demo(args) -> int:
    from handrecon.demo import run_demo

    result = run_demo(args.out, quiet=args.quiet)
    print(f"model: {result['model']} (bundled); {len(result['predictions'])} held-out synthetic images with "
          "known intrinsics")
    print(f"{'image':<10} {'root by':<7} {'CS-MPJPE':>9} {'CS-MPVPE':>9} {'root err':>9} {'PA-MPJPE':>9}  (mm)")
    for r in result["predictions"]:
        e = r["errors"]
        print(f"{r['stem']:<10} {r['mode']:<7} {e['cs_mpjpe_mm']:>9.1f} {e['cs_mpvpe_mm']:>9.1f} "
              f"{e['root_error_mm']:>9.1f} {e['pa_mpjpe_mm']:>9.1f}")
    m = result["mean"]
    print(f"{'mean':<10} {'':<7} {m['cs_mpjpe_mm']:>9.1f} {m['cs_mpvpe_mm']:>9.1f} {m['root_error_mm']:>9.1f} "
          f"{m['pa_mpjpe_mm']:>9.1f}")
    print(f"per image in {args.out}/: STEM.obj/.ply (camera-space mesh, metres), STEM.json, STEM.png (overlay)")
    print(f"summary sheet: {result['summary']}")
    print(f"summary page:  {result['html']}")
    print(f"also: {result['contact_sheet']} (the open hand's named poses), {result['synthetic_samples']} "
          "(synthetic training samples)")
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


def _cmd_synth(args) -> int:
    from handrecon.synth import SceneConfig, write_dataset

    try:
        config = SceneConfig(size=args.size, left_probability=args.left_fraction, mask=args.mask)
        out = write_dataset(args.out, args.num, split=args.split, seed=args.seed, config=config,
                            workers=args.workers, progress=not args.quiet)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.num} {args.split} samples ({args.size}x{args.size}, seed {args.seed}) to {out}/ "
          "in the FreiHAND layout")
    return 0


def _cmd_train(args) -> int:
    from handrecon.train import ConfigError, TrainingError, config_to_yaml, load_config, train

    try:
        config = load_config(args.config, args.overrides)
        if args.print_config:
            print(config_to_yaml(config), end="")
            return 0
        if args.out is None:
            raise ConfigError("--out is required to train (or pass --print-config to only show the config)")
        train(config, args.out, resume=args.resume)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_eval(args) -> int:
    from handrecon.evaluate import HEADLINE, EvaluationError, evaluate

    try:
        scores = evaluate(args.weights, args.data, split=args.split, out=args.out, batch_size=args.batch_size,
                          num_workers=args.workers, device=args.device, root=args.root, root_method=args.root_method,
                          num_axes=args.num_axes, crop=args.crop, crop_scale=args.crop_scale,
                          root_table=args.root_table, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EvaluationError as exc:  # from a loader worker the message carries its traceback: keep the last line
        print(f"error: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    print(f"evaluated {scores['num_samples']} samples of {args.data} ({args.split}) with model {scores['model']!r}")
    if scores["scored"]:
        for key, label, unit in HEADLINE:
            value = scores.get(key)
            text = "n/a" if value is None else f"{value:.2f} {unit}" if unit else f"{value:.3f}"
            print(f"  {label:<9} {text}")
    root = scores["root_source"].replace("_", " ")
    print(f"  root      {root}" + (f" ({scores['root_method']})" if scores.get("root_method") else ""))
    if scores.get("root_table"):
        from handrecon.evaluate import format_root_table

        print("root recovery (CMR Table 4), the same predictions placed by each root method:")
        print(format_root_table(scores["root_table"]))
    for note in scores["notes"]:
        print(f"note: {note}")
    files = scores["files"]
    from pathlib import Path

    print(f"wrote {', '.join(files)} to {Path(next(iter(files.values()))).parent}/")
    return 0


def _cmd_bench(args) -> int:
    from handrecon import bench

    if args.complexity:
        print(bench.format_complexity(bench.bench_complexity(args.presets or None, out_json=args.json)))
        return 0
    if args.what == "models":
        presets = args.presets or ["mobrecon-dense", "mobrecon-ghost"]
        result = bench.bench_models(presets, repeats=args.repeats_models, out_json=args.json)
        print(bench.format_models(result))
    elif args.what == "registration":
        from handrecon.bench_registration import bench_registration, format_registration

        result = bench_registration(repeats=args.repeats)
        if args.json:
            bench.write_json(args.json, result)
        print(format_registration(result))
    elif args.what == "synth":
        result = bench.bench_synth(num=args.num, size=args.size, repeats=args.repeats, out_json=args.json)
        print(bench.format_synth(result))
    return 0


def _load_predictor(args):
    """The Predictor of ``predict``'s --model / --runtime / --device / --threads (ValueError on bad values)."""
    from pathlib import Path

    from handrecon.predict import Predictor, onnx_cache_path, resolve_model

    if args.model is not None and str(args.model).lower().endswith(".onnx"):
        if not Path(args.model).is_file():
            raise ValueError(f"--model: no such ONNX file: '{args.model}'")
        return Predictor(None, runtime="onnx", onnx_path=args.model, device=args.device, num_threads=args.threads)
    model = resolve_model(args.model)
    if args.runtime == "onnx":
        path = onnx_cache_path(model)
        if not path.is_file():
            print(f"note: exporting the model to ONNX once (about a minute); cached as {path}", file=sys.stderr)
    return Predictor(model, runtime=args.runtime, device=args.device, num_threads=args.threads)


def _cmd_predict(args) -> int:
    import math
    from pathlib import Path

    from handrecon.intrinsics import ASSUMED_FOCAL_35MM, parse_intrinsics
    from handrecon.predict import collect_inputs, predict_files

    try:
        K = parse_intrinsics(args.K, "--K") if args.K else None
        bbox = None
        if args.bbox:
            try:
                bbox = [float(x) for x in args.bbox.split(",") if x.strip()]
            except ValueError:
                bbox = []
            if len(bbox) != 4 or not all(map(math.isfinite, bbox)) or not (bbox[2] > bbox[0] and bbox[3] > bbox[1]):
                raise ValueError(f"--bbox must be x0,y0,x1,y1 with x1 > x0 and y1 > y0 (pixels), got {args.bbox!r}")
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        files, bad = collect_inputs(args.inputs)
        for item, reason in bad:
            print(f"error: {item}: {reason}; skipped", file=sys.stderr)
        if not files:
            print("error: no images to predict", file=sys.stderr)
            return 1
        predictor = _load_predictor(args)
    except (ValueError, OSError) as exc:  # OSError: e.g. an unwritable ONNX cache folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    summary = predict_files(predictor, files, out, K=K, bbox=bbox, left=args.left, batch_size=args.batch_size,
                            overlays=not args.no_overlay, progress=not args.quiet)
    written = summary["written"]
    kinds = ".obj, .ply, .json" + (", .png" if summary["overlays"] else "")
    print(f"wrote {len(written)} prediction(s) ({predictor.name}, runtime {predictor.runtime}) to {out}/ "
          f"as STEM{{{kinds}}}")
    renamed = [(path, stem) for path, stem in written if Path(path).stem != stem]
    for path, stem in renamed:
        print(f"note: {path} -> {stem}.* (another input has the same name)")
    if summary["assumed_K"]:
        print(f"warning: {len(summary['assumed_K'])} image(s) had no --K and no EXIF focal length: assumed a "
              f"{ASSUMED_FOCAL_35MM:g} mm-equivalent lens (79.5 degrees diagonal: 67 horizontal on 4:3, 61 on a "
              "square image). Absolute depth (the root's z) is only as good as that guess; the shape and the 2D "
              "fit are not affected. Pass --K fx,fy,cx,cy for metric depth.", file=sys.stderr)
    failed = len(summary["failed"]) + len(bad)
    if failed:
        print(f"error: {failed} input(s) failed (named above)", file=sys.stderr)
        return 1
    return 0


def _cmd_export(args) -> int:
    from handrecon.export import export_onnx, onnx_metadata
    from handrecon.predict import resolve_model

    try:
        model = resolve_model(args.model)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        path = export_onnx(model, args.onnx, opset=args.opset, dynamic_batch=not args.static_batch,
                           exporter=args.exporter)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = onnx_metadata(path)
    S = meta["input_size"]
    batch = "1" if args.static_batch else "B"
    print(f"wrote {path} ({meta['model']}; input 'image' float32 {batch}x3x{S}x{S} RGB in [0,1]; outputs "
          f"{', '.join(meta['outputs'])}; opset {meta['opset']}; {meta['exporter']}); checked against PyTorch")
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
        "demo", help="predict the bundled demo images with the bundled model; overlays, meshes, errors",
        description="Run the bundled default model on the bundled demo images (held-out synthetic renders with "
                    "their intrinsics) exactly as 'handrecon predict' does: per image a camera-space mesh (OBJ, "
                    "PLY), a JSON and an overlay PNG, plus summary.png and index.html; prints the camera-space "
                    "errors against the images' labels. Also writes the open hand's pose sheet.",
        epilog="example: handrecon demo --out outputs/demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
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

    synth = sub.add_parser(
        "synth", help="render a synthetic dataset in the FreiHAND layout",
        description="Render synthetic hands (uniform poses and viewpoints, procedural appearance) with labels "
                    "in the FreiHAND layout. Same seed -> identical files; an interrupted run resumes.",
        epilog="example: handrecon synth data/synth --num 2000 --split training --seed 0 --workers 2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    synth.add_argument("out", help="output folder")
    synth.add_argument("--num", type=int, default=1000, help="number of samples (default: 1000)")
    synth.add_argument("--split", default="training", choices=("training", "evaluation"))
    synth.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    synth.add_argument("--size", type=int, default=224, help="image side in pixels (default: 224)")
    synth.add_argument("--workers", type=int, default=2, help="worker processes (default: 2; 0 = in-process)")
    synth.add_argument("--left-fraction", type=float, default=0.0,
                       help="fraction of left hands, made by mirroring (default: 0)")
    synth.add_argument("--mask", default="visible", choices=("visible", "full"),
                       help="what the masks cover: the visible hand (default, as FreiHAND) or the full hand, "
                            "also behind occluders (the silhouette a 1D root registration needs)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_cmd_synth)

    tr = sub.add_parser(
        "train", help="train a model from a YAML config (resumable; multi-GPU/CPU under torchrun)",
        description="Train a model preset on disk datasets, on-the-fly synthetic hands or a weighted mix, as a "
                    "YAML config describes (see configs/README.md). KEY=VALUE arguments after CONFIG override "
                    "config keys (dotted paths, list items by index). OUT receives model.safetensors + "
                    "model.json, checkpoint/ (resumable state), train_log.csv, val_log.csv, plots/ and "
                    "config.yaml. Under 'torchrun --nproc_per_node=N' it trains with DistributedDataParallel; "
                    "data.batch_size is then per process. Exit code 2 for config errors, 1 if training diverges.",
        epilog="examples:\n  handrecon train configs/tiny-synth.yaml --out runs/tiny-synth\n"
               "  handrecon train configs/tiny-synth.yaml train.steps=1000 optim.lr=5e-4 --out runs/tiny2\n"
               "  handrecon train configs/tiny-synth.yaml --out runs/tiny-synth --resume\n"
               "  handrecon train configs/mobrecon-ghost-sil-synth-stage12.yaml --print-config\n"
               "  torchrun --nproc_per_node=2 -m handrecon.cli train configs/tiny-synth.yaml --out runs/ddp",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("config", help="YAML config file")
    tr.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                    help="config overrides, e.g. optim.lr=1e-3 data.train.0.weight=2")
    tr.add_argument("--out", help="run folder, e.g. runs/NAME (required unless --print-config)")
    tr.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its checkpoint (bit-exact on CPU)")
    tr.add_argument("--print-config", action="store_true",
                    help="print the resolved config (its 'extends' chain merged, overrides applied, defaults "
                         "filled in) as YAML and exit without training")
    tr.set_defaults(func=_cmd_train)

    # Let KEY=VALUE overrides come after the options too (plain argparse takes them only right after CONFIG).
    def _parse_train_args(args=None, namespace=None, _plain=tr.parse_known_args, _busy=[]):
        if _busy:  # parse_known_intermixed_args calls parse_known_args itself
            return _plain(args, namespace)
        _busy.append(True)
        try:
            return tr.parse_known_intermixed_args(args, namespace)
        finally:
            _busy.clear()

    tr.parse_known_args = _parse_train_args

    ev = sub.add_parser(
        "eval", help="score a trained model on a FreiHAND-layout dataset (FreiHAND benchmark metrics)",
        description="Predict every sample of a dataset in the FreiHAND layout with a saved model and score it "
                    "as the FreiHAND benchmark does. Writes scores.json, pred.json (official submission format), "
                    "per_sample.csv and PCK plots. The camera-space root comes from root registration when "
                    "available, else from the ground truth (reported as root source).",
        epilog="examples:\n  handrecon eval runs/tiny/model --data data/synth_eval\n"
               "  handrecon eval runs/mobrecon/model.safetensors --data data/freihand --root gt --out outputs/eval",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("weights", help="saved model: PATH of PATH.safetensors + PATH.json")
    ev.add_argument("--data", required=True, help="dataset folder in the FreiHAND layout")
    ev.add_argument("--split", default="evaluation", choices=("evaluation", "training"),
                    help="split to evaluate (default: evaluation)")
    ev.add_argument("--out", default=None, help="output folder (default: <weights folder>/eval_<split>)")
    ev.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    ev.add_argument("--workers", type=int, default=0, help="data-loading processes (default: 0)")
    ev.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ev.add_argument("--root", default="auto", choices=("auto", "gt"),
                    help="camera-space root: auto = registration when available, else ground truth; "
                         "gt = ground truth (default: auto)")
    ev.add_argument("--root-method", default="adaptive", choices=("adaptive", "2d", "1d", "pnp"),
                    help="how the registration finds the root: adaptive 2D+1D (CMR Eq. 5), 2D keypoints only, "
                         "silhouette only, or OpenCV PnP (default: adaptive)")
    ev.add_argument("--num-axes", type=int, default=12,
                    help="directions of the 1D (silhouette) registration over 180 degrees (default: 12)")
    ev.add_argument("--root-table", action="store_true",
                    help="also score every root method (ground truth, PnP, 2D, 1D and adaptive with A = 2 and 12) on "
                         "the same predictions: CMR's Table 4, printed and written to root_table.md")
    ev.add_argument("--crop", default="auto", choices=("auto", "full", "box"),
                    help="evaluation crop: auto = a square image without a dataset box whole (FreiHAND), else "
                         "the box; box = the labelled hand's box x --crop-scale, as a detector gives (use it for "
                         "full-frame images such as 'handrecon synth' output) (default: auto)")
    ev.add_argument("--crop-scale", type=float, default=1.3, help="box growth for --crop box (default: 1.3)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_eval)

    bench = sub.add_parser(
        "bench", help="measure speed (medians; compare ratios within one run)",
        description="Speed and size measurements (medians; other processes make them noisy). 'models' "
                    "(default): per preset, PyTorch and ONNX Runtime, 1 and 2 threads, batch 1 and 32: latency, "
                    "throughput and the fraction of a same-run fp32 matmul peak; registration time per sample; "
                    "end-to-end Predictor time per image. 'registration': batched registration vs per-sample "
                    "SLSQP. 'synth': renderer ms/frame and synthetic-data images/s. '--complexity': parameters "
                    "(all and used) and multiply-adds of every preset next to the papers' figures.",
        epilog="examples:\n  handrecon bench --json outputs/bench/models.json\n  handrecon bench --complexity\n"
               "  handrecon bench registration\n  handrecon bench synth --num 512 --json outputs/bench/synth.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("what", nargs="?", default="models", choices=("models", "registration", "synth"),
                       help="what to measure (default: models)")
    bench.add_argument("--repeats-models", type=int, default=30,
                       help="models: timed runs at batch 1 (larger batches: an eighth; default: 30)")
    bench.add_argument("--complexity", action="store_true",
                       help="print parameters and multiply-adds per model preset")
    bench.add_argument("--presets", nargs="*", default=None,
                       help="models / --complexity: only these presets (models default: mobrecon-dense "
                            "mobrecon-ghost)")
    bench.add_argument("--num", type=int, default=512, help="images per timed run (default: 512)")
    bench.add_argument("--size", type=int, default=224, help="image side (default: 224)")
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per setting (default: 3)")
    bench.add_argument("--json", default=None, help="also write the results to this JSON file")
    bench.set_defaults(func=_cmd_bench)

    pr = sub.add_parser(
        "predict", help="camera-space hand meshes from images (OBJ, PLY, JSON, PNG overlay per image)",
        description="Recover the camera-space 3D hand mesh of each image with a model (default: the bundled "
                    "one). INPUTS are image files and folders; a folder gives its images (.jpg .jpeg .png .bmp "
                    ".webp .tif .tiff, sorted by name, not recursive). Per image, OUT receives STEM.obj and "
                    "STEM.ply (mesh, metres, camera frame), STEM.json (vertices, keypoints, keypoints_2d, root, "
                    "registration mode, K, K_source, model, left, bbox) and STEM.png (mesh and skeleton over "
                    "the image, and a side view). Inputs with the same name get STEM-2, STEM-3, ... "
                    "Intrinsics: --K, else the JPEG's EXIF focal length, else an assumed 26 mm-equivalent "
                    "lens (then absolute depth is a guess; see K_source). A bad input is named and skipped; "
                    "the exit code is 1 if any input failed, 2 for bad arguments.",
        epilog="examples:\n  handrecon predict photo.jpg --bbox 410,220,780,610 --out outputs/predict\n"
               "  handrecon predict images/ --K 1500,1500,960,540 --left --batch-size 16\n"
               "  handrecon predict images/ --K camera.json --runtime onnx --model runs/mobrecon/model",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders of images")
    pr.add_argument("--K", default=None, metavar="fx,fy,cx,cy|FILE.json",
                    help="intrinsics in pixels, or a JSON file with a 3x3 list, {\"K\": 3x3} or "
                         "{\"fx\",\"fy\",\"cx\",\"cy\"} (default: EXIF, else assumed)")
    pr.add_argument("--bbox", default=None, metavar="x0,y0,x1,y1",
                    help="hand box in pixels (default: the whole image, best when the hand fills it)")
    pr.add_argument("--left", action="store_true", help="the hands are left hands")
    pr.add_argument("--out", default="outputs/predict", help="output folder (default: outputs/predict)")
    pr.add_argument("--model", default=None, metavar="NAME|WEIGHTS|FILE.onnx",
                    help="a bundled model name, saved weights PATH(.safetensors) or an exported .onnx file "
                         "(default: the bundled model)")
    pr.add_argument("--runtime", default="torch", choices=("torch", "onnx"),
                    help="PyTorch or ONNX Runtime (exported once to ~/.cache/handrecon, or $HANDRECON_CACHE; "
                         "default: torch)")
    pr.add_argument("--batch-size", type=int, default=8, help="images per network call (default: 8)")
    pr.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    pr.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: library's)")
    pr.add_argument("--no-overlay", action="store_true", help="skip the PNG overlays")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser(
        "export", help="export a model to ONNX (dynamic batch, checked against PyTorch)",
        description="Export a model to ONNX: input 'image' float32 Bx3xSxS RGB in [0,1] (normalised inside), "
                    "one output per model output (vertices, keypoints_2d, silhouette, ...), dynamic batch. The "
                    "file is checked with onnx.checker and ONNX Runtime must agree with PyTorch within 0.5 mm "
                    "(else exit code 1).",
        epilog="examples:\n  handrecon export --onnx outputs/handrecon.onnx\n"
               "  handrecon export --onnx model.onnx --model runs/mobrecon/model.safetensors --opset 17",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("--onnx", required=True, metavar="OUT", help="output .onnx file")
    ex.add_argument("--model", default=None, metavar="NAME|WEIGHTS",
                    help="a bundled model name or saved weights PATH(.safetensors) (default: the bundled model)")
    ex.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    ex.add_argument("--exporter", default="dynamo", choices=("dynamo", "torchscript"),
                    help="torch.onnx exporter (default: dynamo, falling back to torchscript if it fails)")
    ex.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    ex.set_defaults(func=_cmd_export)
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
