"""``handrecon bench``: speed measurements. Machines are noisy, so every figure is a median over repeats
and comparisons are ratios within one run."""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path


__all__ = ["bench_synth", "bench_complexity", "format_synth", "format_complexity"]


def _render_only_ms(size: int, repeats: int) -> dict:
    """Median milliseconds per frame for the renderer alone and for a whole sample (pose, camera,
    background, render, artefacts), in this process, 1 thread."""
    import torch

    from handrecon.synth.scene import SceneConfig, SceneGenerator

    torch.set_num_threads(1)
    gen = SceneGenerator(seed=123, config=SceneConfig(size=size))
    samples = gen.generate(range(4))
    from handrecon.render.renderer import Mesh

    mesh = Mesh(samples[0]["vertices"], gen.hand.faces, color=(0.9, 0.7, 0.6))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        gen.renderer.render([mesh], samples[0]["K"], size=(size, size))
        times.append(time.perf_counter() - t)
    sample_times = []
    for i in range(max(repeats // 4, 8)):
        t = time.perf_counter()
        gen.generate([1000 + i])
        sample_times.append(time.perf_counter() - t)
    return {"render_ms": 1000 * statistics.median(times), "sample_ms": 1000 * statistics.median(sample_times)}


def _pipeline_rate(workers: int, num: int, size: int, out: str) -> float:
    """Images per second for the full writer pipeline (generate, render, JPEG-encode image and mask,
    write) with ``workers`` processes, timed after every worker has started."""
    from handrecon.synth import writer
    from handrecon.synth.scene import SceneConfig

    cfg = writer.config_to_dict(SceneConfig(size=size))
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=writer._init_worker,
                                initargs=(7, cfg, 1)) as pool:
        # Warm up: one small chunk per worker opens its GL context and imports everything.
        list(pool.map(writer._write_chunk, [out] * workers, ["training"] * workers,
                      [10**6 + k * 4 for k in range(workers)], [10**6 + k * 4 + 2 for k in range(workers)]))
        chunks = [(a, min(a + writer.CHUNK, num)) for a in range(0, num, writer.CHUNK)]
        t = time.perf_counter()
        list(pool.map(writer._write_chunk, [out] * len(chunks), ["training"] * len(chunks),
                      [a for a, _ in chunks], [b for _, b in chunks]))
        return num / (time.perf_counter() - t)


def bench_synth(num: int = 512, size: int = 224, repeats: int = 3, workers=(1, 2), out_json=None) -> dict:
    """Synthetic data speed: renderer ms/frame, sample ms, and pipeline images/s per worker count
    (median of ``repeats`` runs)."""
    result = {"size": size, "num": num, "repeats": repeats}
    result.update(_render_only_ms(size, 200))
    for w in workers:
        rates = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                rates.append(_pipeline_rate(w, num, size, tmp))
        result[f"images_per_s_{w}_workers"] = statistics.median(rates)
        result[f"images_per_s_{w}_workers_all"] = [round(r, 1) for r in rates]
    if out_json:
        from handrecon.fileio import atomic_path

        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2))
    return result


def format_synth(result: dict) -> str:
    lines = [f"synthetic data at {result['size']}x{result['size']} (medians)",
             f"  renderer alone (hand, RGB+ids+depth): {result['render_ms']:.2f} ms/frame",
             f"  one whole sample in-process:          {result['sample_ms']:.2f} ms"]
    for key, value in result.items():
        if key.startswith("images_per_s_") and not key.endswith("_all"):
            w = key.split("_")[3]
            lines.append(f"  writer pipeline, {w} worker(s):         {value:.0f} images/s "
                         f"(runs: {result[key + '_all']})")
    return "\n".join(lines)



#: the paper's figures the complexity table compares with: (parameters, multiply-adds, source)
PAPER_COMPLEXITY = {
    "mobrecon-dense": (8.1e6, 439.9e6, "MobRecon Table 4"),
    "mobrecon-ghost": (5.3e6, 123.5e6, "MobRecon Table 4"),
}


def bench_complexity(presets=None, out_json=None) -> dict:
    """{preset: {parameters, used_parameters, macs, input_size, paper}} for the registered model presets
    (default: every preset but the test model), counted as the papers count (see :mod:`handrecon.nn.complexity`)."""
    import torch

    from handrecon.models import build_model, list_models
    from handrecon.nn import count_complexity

    names = list(presets) if presets else [n for n in list_models() if n != "tiny"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = {}
        for name in names:
            c = count_complexity(build_model(name))
            c["paper"] = PAPER_COMPLEXITY.get(name)
            result[name] = c
    finally:
        torch.set_num_threads(before)
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(result, indent=2))
    return result


def format_complexity(result: dict) -> str:
    lines = [f"{'preset':<22} {'input':>5} {'params (M)':>10} {'used (M)':>9} {'Mult-Adds (M)':>13}   paper",
             "-" * 90]
    for name, c in result.items():
        paper = ""
        if c.get("paper"):
            p, m, src = c["paper"]
            paper = (f"{p / 1e6:.1f} M, {m / 1e6:.1f} M ({src}): {100 * (c['used_parameters'] / p - 1):+.1f}% / "
                     f"{100 * (c['macs'] / m - 1):+.1f}%")
        lines.append(f"{name:<22} {c['input_size']:>5} {c['parameters'] / 1e6:>10.2f} {c['used_parameters'] / 1e6:>9.2f} "
                     f"{c['macs'] / 1e6:>13.1f}   {paper}")
    lines.append("Used = parameters that get a gradient; Mult-Adds = matrix and convolution work for one image.")
    return "\n".join(lines)
