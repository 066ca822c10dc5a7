#!/usr/bin/env python3
"""The GPU measurements of issue 22, in one run on a lent H100/H200 (results to --out, i.e. $OUT).

Prepared, never run here (no GPU in the session that wrote it). In priority order, each step
guarded (an error or a missing package is recorded, the next step runs) and skipped once the
time budget is spent:

1. ``plugin``: core.savsr.Upscale on CUDA end to end inside VapourSynth (synthetic 960x540 RGBS
   clip, x2, savsr-s, fp16): frames/s, and the largest difference from the engine called directly
   on the same windows; with backend="trt" too when TensorRT is importable.
2. ``trt``: the TRT backend against our fp16 PyTorch engine at 960x540 -> x2 and 1920x1080 -> x2
   (savsr-s, the shipped weights): ms/frame each, engine build time, and the output difference of
   each from fp32 PyTorch.
3. ``conv``: the convolution-heavy part (alignment + fusion + reconstruction) of the full savsr
   (seeded random weights) at 960x540 -> x2, fp16, as % of the dense bf16 peak, with each lever:
   eager (cuDNN autotuning), CUDA graph replay, torch.compile, TensorRT (the part exported alone).

The device image has no TensorRT, and pip cannot fetch it on this workplace (tensorrt-cu13-libs
comes from NVIDIA's own index); without it the TRT rows say "not measured: tensorrt missing".
How to carry VapourSynth and this package: scripts/BENCHMARKS.md, "GPU: backends".

    python3 scripts/gpu/backends.py --out "$OUT" --budget 420
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BF16_PEAK = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0}
RESULT: dict = {"steps": {}}
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def step(name: str, budget: float):
    """Decorator: run the step unless the budget is spent; record its result or error."""

    def wrap(fn):
        def run(*a, **k):
            if time.perf_counter() - T0 > budget:
                RESULT["steps"][name] = {"skipped": "time budget spent"}
                log(f"{name}: skipped (budget)")
                return None
            log(f"{name}: start")
            try:
                RESULT["steps"][name] = fn(*a, **k)
            except Exception as exc:
                RESULT["steps"][name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
                log(f"{name}: ERROR {type(exc).__name__}: {exc}")
            log(f"{name}: done")
            return RESULT["steps"].get(name)

        return run

    return wrap


def sync():
    import torch

    torch.cuda.synchronize()


def timed(fn, x, warmup: int, reps: int) -> float:
    """Median ms of ``fn(x)`` over ``reps`` calls after ``warmup`` calls (CUDA events)."""
    import torch

    for _ in range(warmup):
        fn(x)
    sync()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(x)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def synth_windows(batch: int, h: int, w: int, seed: int = 0):
    """(batch, 7, 3, h, w) float32 on the GPU: a smooth texture with edges, drifting over the 7 frames."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    yy = torch.linspace(0, 1, h, device="cuda").view(h, 1)
    xx = torch.linspace(0, 1, w, device="cuda").view(1, w)
    frames = []
    for t in range(7):
        base = [torch.sin(40 * (xx + 0.004 * t) * (c + 1)) * torch.cos(25 * yy * (c + 2)) for c in range(3)]
        img = 0.5 + 0.35 * torch.stack(base) + 0.05 * torch.rand(3, h, w, generator=g, device="cuda")
        frames.append(((img * 8).floor() / 8 * 0.3 + img * 0.7).clamp(0, 1))
    return torch.stack(frames).unsqueeze(0).expand(batch, -1, -1, -1, -1).contiguous()


def diff(a, b) -> dict:
    d = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).abs()
    return {"max_abs": float(d.max()), "max_abs_x255": float(d.max()) * 255, "mean_abs": float(d.mean())}


def have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


# ------------------------------------------------------------------------------------------


def env() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "tensorrt": None,
        "onnxruntime_providers": None,
        "vapoursynth": None,
    }
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except Exception as exc:
        info["tensorrt_missing"] = str(exc)
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:
        pass
    try:
        import vapoursynth as vs

        info["vapoursynth"] = vs.__version__
    except Exception as exc:
        info["vapoursynth_missing"] = str(exc)
    for mod in ("onnx", "onnxscript"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:
            info[mod] = f"missing: {exc}"
    return info


def plugin_step(frames: int, cache: Path) -> dict:
    """core.savsr.Upscale on CUDA inside VapourSynth, against the engine on the same windows."""
    import numpy as np
    import torch
    import vapoursynth as vs

    from vssavsr.engine import runner as engine
    from vssavsr.engine.windows import window_indices
    from vssavsr.plugin import native
    from vssavsr.plugin.arrays import clip_from_arrays, frame_array

    core = vs.core
    native.ensure_namespace(core)
    h, w, n = 540, 960, frames + 4
    src_np = synth_windows(1, h, w)[0].cpu().numpy()  # 7 frames; the clip cycles through them
    clip = clip_from_arrays([src_np[i % 7] for i in range(n)])
    res: dict = {"case": f"{w}x{h} -> x2, savsr-s, {frames} frames after 4 warm-up"}
    runner = engine.get_runner(engine.shipped_checkpoint("savsr-s"), torch.device("cuda", 0), True)
    for backend in ("torch", "trt"):
        if backend == "trt" and not have("tensorrt"):
            res["trt"] = "not measured: tensorrt missing"
            continue
        # the clip wraps from its 7th frame back to its 1st, a cut the filter honours; the engine reference does not
        up = core.savsr.Upscale(clip, sx=2, model="savsr-s", device_index=0, backend=backend, scene_detect=False)
        for i in range(4):
            up.get_frame(i)
        t = time.perf_counter()
        outs = {}
        for i in range(4, n):
            f = up.get_frame(i)
            if i == 6:
                outs[i] = frame_array(f)
        dt = (time.perf_counter() - t) / frames
        win = window_indices(6, n)
        x = torch.from_numpy(np.stack([src_np[j % 7] for j in win])).unsqueeze(0).cuda()
        with torch.inference_mode():
            ref = runner(x, (2 * h, 2 * w), (2.0, 2.0)).clamp(0, 1)[0].cpu().numpy()
        res[backend] = {"fps": 1 / dt, "ms_per_frame": dt * 1e3,
                        "max_abs_vs_engine_fp16_x255": float(np.abs(outs[6] - ref).max()) * 255}
    return res


def trt_step(cases, cache: Path) -> dict:
    import torch

    from vssavsr.engine import backends
    from vssavsr.engine import runner as engine
    from vssavsr.model import load_checkpoint

    ckpt = engine.shipped_checkpoint("savsr-s")
    res: dict = {}
    for (h, w, s, reps) in cases:
        H, W = h * s, w * s
        name = f"{w}x{h} -> x{s}"
        row: dict = {}
        x = synth_windows(1, h, w)
        fp16 = engine.get_runner(ckpt, torch.device("cuda", 0), True)
        fn16 = lambda v: fp16(v, (H, W), (float(s), float(s)))  # noqa: E731
        with torch.inference_mode():
            row["torch_fp16_ms"] = timed(fn16, x, 3, reps)
            ref16 = fn16(x)
            fp32 = engine.get_runner(ckpt, torch.device("cuda", 0), False)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            ref32 = fp32(x, (H, W), (float(s), float(s)))
            torch.backends.cudnn.allow_tf32 = True
        row["torch_fp16_vs_fp32"] = diff(ref16, ref32)
        if not have("tensorrt"):
            row["trt"] = "not measured: tensorrt missing"
            res[name] = row
            continue
        net, _ = load_checkpoint(str(ckpt))
        for fp in (True, False):
            key = "trt_fp16" if fp else "trt_fp32"
            t = time.perf_counter()
            target = backends.resolve("trt", 0, fp)
            run = backends.open_runner(target, ckpt, net, (h, w), (H, W), (float(s), float(s)), folder=cache)
            row[f"{key}_prepare_s"] = time.perf_counter() - t  # export + engine build
            fn = lambda v: run(v, (H, W), (float(s), float(s)))  # noqa: E731
            with torch.inference_mode():
                row[f"{key}_ms"] = timed(fn, x, 3, reps)
                out = fn(x)
            row[f"{key}_vs_fp32"] = diff(out, ref32)
            row[f"{key}_vs_torch_fp16"] = diff(out, ref16)
            row[f"{key}_speedup_vs_torch_fp16"] = row["torch_fp16_ms"] / row[f"{key}_ms"]
            run = fn = None  # free the engine before the next one
            torch.cuda.empty_cache()
        res[name] = row
    return res


def conv_step(cache: Path, budget_left) -> dict:
    """The conv part of the full savsr at 960x540 x2 (fp16), as % of the bf16 dense peak, per lever."""
    import torch

    from vssavsr.model import SAVSR
    from vssavsr.model.flops import count_macs
    from vssavsr.model.savsr import pad_to_even

    h, w, s, b = 540, 960, 2.0, 1
    macs = count_macs("savsr", (h, w), s)["by_module"]
    conv_macs = sum(macs[k] for k in ("alignment", "fusion", "reconstruction"))
    gpu = torch.cuda.get_device_name(0)
    peak = next((v for k, v in BF16_PEAK.items() if k in gpu), 989.0)
    torch.manual_seed(0)
    net = SAVSR("savsr").eval().fuse_for_inference().requires_grad_(False).cuda().half()
    torch.backends.cudnn.benchmark = True
    x = pad_to_even(synth_windows(b, h, w).half())
    inv = x.new_tensor([1 / s, 1 / s]).expand(b, 2).contiguous()
    res: dict = {"case": f"full savsr (random weights), {w}x{h} -> x2, batch {b}, fp16", "conv_macs": conv_macs,
                 "peak_tflops": peak}

    def record(name, ms):
        tf = 2 * conv_macs * b / (ms * 1e-3) / 1e12
        res[name] = {"ms": ms, "tflops": tf, "pct_of_peak": 100 * tf / peak}
        log(f"conv {name}: {ms:.1f} ms, {tf:.0f} TFLOP/s ({100 * tf / peak:.1f} % of {peak:.0f})")

    with torch.inference_mode():
        eager = lambda v: net.features(v, inv)  # noqa: E731
        record("eager", timed(eager, x, 3, 10))

    # CUDA graph replay (the features part has no host-built grid; the upsampler's grid would block capture)
    try:
        static_x = x.clone()
        with torch.inference_mode():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    net.features(static_x, inv)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = net.features(static_x, inv)
            record("cuda_graph", timed(lambda v: graph.replay(), x, 3, 10))
            del static_out
    except Exception as exc:
        res["cuda_graph"] = {"error": f"{type(exc).__name__}: {exc}"}

    if budget_left() > 120:
        try:
            compiled = torch.compile(net.features, mode="max-autotune-no-cudagraphs", dynamic=False)
            with torch.inference_mode():
                t = time.perf_counter()
                compiled(x, inv)
                res["compile_s"] = time.perf_counter() - t
                record("torch_compile", timed(lambda v: compiled(v, inv), x, 2, 10))
        except Exception as exc:
            res["torch_compile"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        res["torch_compile"] = {"skipped": "time budget"}

    if not have("tensorrt"):
        res["tensorrt"] = "not measured: tensorrt missing"
    elif budget_left() > 90:
        try:
            res["tensorrt"] = _trt_features(net, x, inv, cache)
            record("tensorrt", res["tensorrt"]["ms"])
        except Exception as exc:
            res["tensorrt"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        res["tensorrt"] = {"skipped": "time budget"}
    return res


def _trt_features(net, x, inv, cache: Path) -> dict:
    """The conv part alone through TensorRT: export (fp16, static) -> engine -> time."""
    import contextlib
    import io

    import tensorrt as trt
    import torch

    from vssavsr.engine.backends.trt import build_engine

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, v):
            a, r = self.net.features(v, inv)
            return a, r

    path = cache / "features.onnx"
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(Features().eval(), (x,), dynamo=True, optimize=True, external_data=False).save(str(path))
    engine_file = build_engine(path, cache / "features.engine")
    prep = time.perf_counter() - t
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
    ctx = engine.create_execution_context()
    buffers = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(engine.get_tensor_shape(name))
        dtype = torch.float16 if engine.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
        buf = x.to(dtype) if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else torch.empty(shape, dtype=dtype, device="cuda")
        buffers[name] = buf
        ctx.set_tensor_address(name, buf.data_ptr())
    stream = torch.cuda.current_stream()
    ms = timed(lambda v: ctx.execute_async_v3(stream.cuda_stream), x, 3, 10)
    return {"ms": ms, "prepare_s": prep}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "out/gpu-backends"))
    ap.add_argument("--budget", type=float, default=420.0, help="seconds; steps that would start later are skipped")
    ap.add_argument("--steps", default="plugin,trt,conv")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="vssavsr-gpu-cache-"))
    os.environ["VSSAVSR_CACHE_DIR"] = str(cache)
    budget_left = lambda: args.budget - (time.perf_counter() - T0)  # noqa: E731
    RESULT["env"] = env()
    log(json.dumps(RESULT["env"]))
    steps = args.steps.split(",")
    if "plugin" in steps:
        if RESULT["env"].get("vapoursynth"):
            step("plugin", args.budget)(plugin_step)(8, cache)
        else:
            RESULT["steps"]["plugin"] = {"skipped": "vapoursynth missing: carry its wheel (scripts/BENCHMARKS.md)"}
    if "trt" in steps:
        step("trt", args.budget)(trt_step)([(540, 960, 2, 10), (1080, 1920, 2, 5)], cache)
    if "conv" in steps:
        step("conv", args.budget)(conv_step)(cache, budget_left)
    RESULT["wall_s"] = time.perf_counter() - T0
    (out / "gpu_backends.json").write_text(json.dumps(RESULT, indent=1, default=str))
    print(json.dumps(RESULT, indent=1, default=str)[-6000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
