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


__all__ = ["bench_synth", "bench_complexity", "bench_models", "matmul_peak_gflops", "write_json", "format_synth",
           "format_complexity", "format_models"]


def write_json(path, result: dict) -> None:
    """Write a bench result as JSON, atomically (folders created)."""
    from handrecon.fileio import atomic_path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2, default=float))


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
        write_json(out_json, result)
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

    from handrecon.models.cmr import CMR_REFERENCE_COMPLEXITY

    reference = {**PAPER_COMPLEXITY, **CMR_REFERENCE_COMPLEXITY}
    names = list(presets) if presets else [n for n in list_models() if n != "tiny"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = {}
        for name in names:
            c = count_complexity(build_model(name))
            c["paper"] = reference.get(name)
            result[name] = c
    finally:
        torch.set_num_threads(before)
    if out_json:
        write_json(out_json, result)
    return result


def format_complexity(result: dict) -> str:
    lines = [f"{'preset':<22} {'input':>5} {'params (M)':>10} {'used (M)':>9} {'Mult-Adds (M)':>13}   "
             "reference: params, Mult-Adds: our difference (source)",
             "-" * 90]
    for name, c in result.items():
        paper = ""
        if c.get("paper"):
            p, m, src = c["paper"]
            paper = (f"{p / 1e6:.1f} M, {m / 1e6:.1f} M: {100 * (c['used_parameters'] / p - 1):+.1f}% / "
                     f"{100 * (c['macs'] / m - 1):+.1f}% ({src})")
        lines.append(f"{name:<22} {c['input_size']:>5} {c['parameters'] / 1e6:>10.2f} {c['used_parameters'] / 1e6:>9.2f} "
                     f"{c['macs'] / 1e6:>13.1f}   {paper}")
    lines.append("Used = parameters that get a gradient; Mult-Adds = matrix and convolution work for one image.")
    return "\n".join(lines)


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak_gflops(threads: int, size: int = 1024, repeats: int = 7) -> float:
    """Median fp32 GFLOP/s of a ``size``-square matrix product in torch with ``threads`` threads: the
    same-run reference that model throughput is compared with."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(size, size), torch.rand(size, size)
        s = _median_seconds(lambda: torch.mm(a, b), repeats)
    finally:
        torch.set_num_threads(before)
    return 2 * size ** 3 / s / 1e9


def bench_models(presets=("mobrecon-dense", "mobrecon-ghost"), batches=(1, 32), threads=(1, 2),
                 runtimes=("torch", "onnx"), repeats: int = 30, predict: bool = True, registration: bool = True,
                 out_json=None, progress: bool = True) -> dict:
    """Model speed on this CPU: per preset, runtime, thread count and batch size the median latency (ms per
    batch), throughput (images/s) and achieved GFLOP/s as a fraction of a same-run fp32 matmul peak; plus the
    registration time per sample and the end-to-end ``Predictor.predict`` time per image (bundled model).

    Models have random weights (speed does not depend on them); ONNX files are exported to a temporary folder.
    Batch-1 figures use ``repeats`` timed runs, larger batches ``max(3, repeats // 8)``.
    """
    import torch
    from tqdm import tqdm

    from handrecon.models import build_model
    from handrecon.nn import count_complexity

    before = torch.get_num_threads()
    result = {"peak_gflops": {}, "models": {}, "repeats": repeats}
    try:
        for t in threads:
            result["peak_gflops"][str(t)] = matmul_peak_gflops(t)
        jobs = [(p, r, t, b) for p in presets for r in runtimes for t in threads for b in batches]
        bar = tqdm(total=len(jobs), desc="bench models", disable=not progress)
        with tempfile.TemporaryDirectory() as tmp:
            for preset in presets:
                model = build_model(preset).eval()
                c = count_complexity(model)
                S = model.input_size
                entry = {"input_size": S, "macs": c["macs"], "parameters": c["parameters"], "runs": []}
                onnx_path = None
                if "onnx" in runtimes:
                    from handrecon.export import export_onnx, onnx_session

                    onnx_path = export_onnx(model, Path(tmp) / f"{preset}.onnx")
                for runtime in runtimes:
                    for t in threads:
                        torch.set_num_threads(t)
                        session = onnx_session(onnx_path, t) if runtime == "onnx" else None
                        for b in batches:
                            x = torch.rand(b, 3, S, S)
                            if runtime == "onnx":
                                feed = {session.get_inputs()[0].name: x.numpy()}
                                fn = lambda: session.run(None, feed)  # noqa: E731
                            else:
                                def fn():
                                    with torch.inference_mode():
                                        model(x)
                            n = repeats if b == 1 else max(3, repeats // 8)
                            # let the other runtime's worker threads stop spinning (they would steal the cores
                            # and double the first latencies), then warm up
                            time.sleep(1.0)
                            s = _median_seconds(fn, n, warmup=5)
                            gflops = 2 * c["macs"] * b / s / 1e9
                            entry["runs"].append({
                                "runtime": runtime, "threads": t, "batch": b, "ms": 1000 * s,
                                "images_per_s": b / s, "gflops": gflops,
                                "peak_fraction": gflops / result["peak_gflops"][str(t)]})
                            bar.update(1)
                result["models"][preset] = entry
        bar.close()
        if registration:
            from handrecon.bench_registration import bench_registration

            result["registration"] = bench_registration()
        if predict:
            result["predict"] = _bench_predict(threads, repeats)
    finally:
        torch.set_num_threads(before)
    if out_json:
        write_json(out_json, result)
    return result


def _bench_predict(threads, repeats: int) -> dict:
    """Median ms per image of ``Predictor.predict`` on a bundled demo image (crop, network, registration
    with the silhouette, un-cropping), per runtime and thread count."""
    import cv2
    import torch

    from handrecon.demo import demo_samples
    from handrecon.predict import Predictor

    sample = demo_samples()[0]
    image = cv2.cvtColor(cv2.imread(str(sample["path"])), cv2.COLOR_BGR2RGB)
    out = {}
    for runtime in ("torch", "onnx"):
        for t in threads:
            torch.set_num_threads(t)
            predictor = Predictor.from_pretrained(runtime=runtime, num_threads=t)
            s = _median_seconds(lambda: predictor.predict(image, K=sample["K"]), max(5, repeats // 2))
            out[f"{runtime}_{t}"] = 1000 * s
    return out


def format_models(result: dict) -> str:
    peaks = ", ".join(f"{t} thread(s) {g:.0f} GFLOP/s" for t, g in result["peak_gflops"].items())
    lines = [f"fp32 matmul peak (same run): {peaks}",
             f"{'preset':<16} {'runtime':<7} {'thr':>3} {'batch':>5} {'ms/batch':>9} {'img/s':>8} {'GFLOP/s':>8} "
             f"{'% peak':>7}"]
    for preset, entry in result["models"].items():
        lines.append(f"{preset}: {entry['macs'] / 1e6:.1f} M Mult-Adds, {entry['parameters'] / 1e6:.2f} M params, "
                     f"{entry['input_size']} px")
        for r in entry["runs"]:
            lines.append(f"{'':<16} {r['runtime']:<7} {r['threads']:>3} {r['batch']:>5} {r['ms']:>9.2f} "
                         f"{r['images_per_s']:>8.1f} {r['gflops']:>8.1f} {100 * r['peak_fraction']:>6.1f}%")
    if "registration" in result:
        from handrecon.bench_registration import format_registration

        lines.append(format_registration(result["registration"]))
    if "predict" in result:
        lines.append("end-to-end Predictor.predict on a demo image (bundled model), median ms/image: "
                     + ", ".join(f"{k.replace('_', ' ')} thread(s) {v:.1f}" for k, v in result["predict"].items()))
    return "\n".join(lines)
