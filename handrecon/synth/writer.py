"""Write synthetic datasets in the FreiHAND layout, in parallel, resumably, atomically.

Layout of ``OUT`` for split ``training`` (``evaluation`` is the same with that name)::

    training/rgb/%08d.jpg      RGB images (JPEG quality 95)
    training/mask/%08d.jpg     hand silhouettes (255 = visible hand; threshold at 128 when reading)
    training_K.json            [N][3][3] intrinsics
    training_xyz.json          [N][21][3] keypoints, camera space, metres, FreiHAND order
    training_verts.json        [N][778][3] vertices, camera space, metres
    training_scale.json        [N] length of the middle finger's first bone (keypoints 9-10), metres
    training_pose.json         [N] {"pose": 48 axis-angle (index 0 = global, camera frame), "shape": S,
                               "root": 3 (camera-space wrist keypoint)}
    training_meta.json         [N] {"left", "visible": 21 bools, "source", "view", "occluded"}
    handrecon.json             generator version, seed, config, hand model, per split: count and state

Work is split into fixed chunks of indices. Each chunk's images are written (temp file + rename) and then
its labels go to ``.parts/<split>/<first index>.json``; a re-run skips finished chunks, so an interrupted
run resumes without redoing work and never leaves a half-written file. The label files are assembled once
every chunk is done, and the parts are removed.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from handrecon import __version__
from handrecon.fileio import atomic_path

__all__ = ["GENERATOR_VERSION", "SPLITS", "write_dataset", "config_to_dict", "config_from_dict"]

#: Bumped whenever the same (seed, config) would give different samples.
GENERATOR_VERSION = 1
SPLITS = ("training", "evaluation")
CHUNK = 32
JPEG_QUALITY = 95
_DIGITS = 6  # decimals kept in the JSON labels: micrometres


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(d: dict):
    from handrecon.synth.appearance import AppearanceConfig
    from handrecon.synth.poses import PoseJitter
    from handrecon.synth.scene import SceneConfig
    from handrecon.synth.views import ViewConfig

    d = dict(d)
    sub = {"pose": PoseJitter, "view": ViewConfig, "appearance": AppearanceConfig}
    for key, cls in sub.items():
        if key in d:
            d[key] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d[key].items()})
    return SceneConfig(**d)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, separators=(",", ":"))


def _encode_jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _round(a) -> list:
    return np.round(np.asarray(a, dtype=np.float64), _DIGITS).tolist()


def _labels(sample: dict) -> dict:
    return {
        "K": _round(sample["K"]),
        "xyz": _round(sample["keypoints"]),
        "verts": _round(sample["vertices"]),
        "scale": round(float(sample["scale"]), _DIGITS),
        "pose": {"pose": _round(sample["pose"].reshape(-1)), "shape": _round(sample["shape"]),
                 "root": _round(sample["root"])},
        "meta": {"left": bool(sample["left"]), "visible": [bool(v) for v in sample["visible"] > 0.5],
                 "source": int(sample["source"]), "view": int(sample["view"]), "occluded": bool(sample["occluded"])},
    }


# ---- worker side -------------------------------------------------------------------------------------

_GENERATOR = None


def _init_worker(seed: int, config: dict, threads: int) -> None:
    import torch

    from handrecon.synth.scene import SceneGenerator

    os.environ.setdefault("LP_NUM_THREADS", str(threads))  # llvmpipe: one thread is fastest at 224x224
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    global _GENERATOR
    _GENERATOR = SceneGenerator(seed, config_from_dict(config))


def _write_chunk(out: str, split: str, start: int, stop: int) -> int:
    root = Path(out)
    labels = []
    for sample in _GENERATOR.generate(range(start, stop)):
        name = f"{sample['index']:08d}.jpg"
        _write_bytes(root / split / "rgb" / name, _encode_jpeg(sample["image"][..., ::-1]))
        _write_bytes(root / split / "mask" / name, _encode_jpeg(sample["mask"] * 255))
        labels.append(_labels(sample))
    _write_json(_parts_dir(root, split) / f"{start:08d}.json", labels)
    return stop - start


def _parts_dir(root: Path, split: str) -> Path:
    return root / ".parts" / split


# ---- main side ---------------------------------------------------------------------------------------

def _manifest(root: Path) -> dict:
    path = root / "handrecon.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); remove it or choose another output folder") from None


def _assemble(root: Path, split: str, num: int) -> None:
    parts = _parts_dir(root, split)
    merged = {k: [] for k in ("K", "xyz", "verts", "scale", "pose", "meta")}
    for start in range(0, num, CHUNK):
        labels = json.loads((parts / f"{start:08d}.json").read_text())
        for entry in labels:
            for k in merged:
                merged[k].append(entry[k])
    for k, v in merged.items():
        _write_json(root / f"{split}_{k}.json", v)


def write_dataset(out, num: int, split: str = "training", seed: int = 0, config=None, workers: int = 1,
                  progress: bool = True, threads_per_worker: int = 1) -> Path:
    """Render ``num`` samples into ``out`` in the FreiHAND layout (see the module docstring).

    Args:
        out: output folder (created). Several splits can share it.
        num: number of samples.
        split: ``"training"`` or ``"evaluation"``.
        seed: dataset seed; the same seed, config and generator version give identical files.
        config: :class:`handrecon.synth.SceneConfig` (default: the default config).
        workers: worker processes (each with its own GL context); 0 renders in this process.
        progress: show a progress bar.

    Returns:
        The output folder. Re-running an interrupted call resumes it; re-running a finished one does
        nothing. Asking for a different seed, size or config in the same folder raises ValueError.
    """
    from tqdm import tqdm

    from handrecon.synth.scene import SceneConfig

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if int(num) < 1:
        raise ValueError(f"num must be a positive number of samples, got {num}")
    if int(workers) < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    num, seed = int(num), int(seed)
    config = config or SceneConfig()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)

    manifest = _manifest(root)
    wanted = {"generator_version": GENERATOR_VERSION, "seed": seed, "config": config_to_dict(config),
              "hand_model": "open"}
    for key, value in wanted.items():
        if key in manifest and json.loads(json.dumps(manifest[key])) != json.loads(json.dumps(value)):
            raise ValueError(f"{root} already holds a dataset with a different {key} "
                             f"({manifest[key]!r} vs {value!r}); use another output folder")
    state = manifest.get("splits", {}).get(split)
    if state is not None and state["num"] != num:
        raise ValueError(f"{root} already holds {state['num']} {split} samples; asked for {num}. "
                         "Use another output folder")
    if state is not None and state["complete"]:
        return root
    manifest.update(wanted, handrecon_version=__version__, chunk=CHUNK)
    manifest.setdefault("splits", {})[split] = {"num": num, "complete": False}
    _write_json(root / "handrecon.json", manifest)

    parts = _parts_dir(root, split)
    parts.mkdir(parents=True, exist_ok=True)
    todo = [(s, min(s + CHUNK, num)) for s in range(0, num, CHUNK) if not (parts / f"{s:08d}.json").exists()]
    done = num - sum(b - a for a, b in todo)
    bar = tqdm(total=num, initial=done, desc=f"synth {split}", unit="img", disable=not progress,
               dynamic_ncols=True)
    cfg = config_to_dict(config)
    try:
        if workers == 0:
            _init_worker(seed, cfg, threads_per_worker)
            for a, b in todo:
                bar.update(_write_chunk(str(root), split, a, b))
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(seed, cfg, threads_per_worker)) as pool:
                futures = [pool.submit(_write_chunk, str(root), split, a, b) for a, b in todo]
                try:
                    for fut in cf.as_completed(futures):
                        bar.update(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()
    _assemble(root, split, num)
    manifest["splits"][split]["complete"] = True
    _write_json(root / "handrecon.json", manifest)
    shutil.rmtree(parts, ignore_errors=True)
    if not any(os.scandir(root / ".parts")):
        os.rmdir(root / ".parts")
    return root
