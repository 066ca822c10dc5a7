#!/usr/bin/env python3
"""SAVSR speed and memory benchmark (issue 6).

One run measures, on the same synthetic input and the same weights, per case:

* ``raw``    (a) the model on preloaded tensors, fast path: folded BatchNorm, several windows per
             call, channels-last, and on CUDA fp16 weights + cuDNN autotuning (optionally
             ``torch.compile``);
* ``engine``     the project's engine (``vssavsr.engine.runner.get_runner``) on the same
             preloaded tensors: the compute configuration the plugin uses, without VapourSynth;
* ``plugin`` (b) the full ``core.savsr.Upscale`` path through VapourSynth (frame conversion,
             windowing, caches), frames pulled in order from an RGBS source clip;
* ``overhead``   the plugin path with the model replaced by a no-op (device copy + output write):
             the host-side cost of frame conversion, windowing and VapourSynth alone;
* ``naive``  (c) our network in reference mode (``net.set_reference_mode(True)``): per-pixel expert
             matrices, unfolded 5 x 5 filter, unfused BatchNorm, per-sample OSConv, fp32 (TF32
             off), one window per call.

Every mode runs in a fresh subprocess (so peaks do not pollute each other), in rounds with the
modes interleaved; the table reports the median over rounds. Figures per mode: frames/s,
ms/frame, peak memory (the process' peak RSS during the timed frames on the CPU;
``torch.cuda.max_memory_allocated`` on CUDA, plus reserved and whole-device figures), achieved
TFLOP/s (2 FLOPs per MAC of the model's MAC count, ``vssavsr.model.flops.count_macs``, for the
whole network and for its convolution-heavy part: alignment + fusion + reconstruction), and
per case the ratios raw/naive (frames/s), plugin/raw and plugin/engine (time per frame), and
the largest output difference raw vs naive and plugin vs engine (clamped to [0, 1]).

Usage::

    python scripts/benchmark.py --quick --json out/bench.json      # CPU, < 2 min
    python scripts/benchmark.py --device cuda --json out/bench-gpu.json   # the three GPU cases
    python scripts/benchmark.py --device cuda --sweep --json out/levers.json  # + one-lever variants

``--cases 320x180x4,960x540x2`` picks cases (WIDTHxHEIGHTxSCALE, optionally ``:bBATCH:nFRAMES:tTILE``;
a default size keeps its default batch and frames), ``--modes raw,plugin,naive`` the modes.
Results and the GPU commands to run are recorded in ``scripts/BENCHMARKS.md``. Weights: ``--checkpoint PATH``, else the shipped
``vssavsr/weights/<model>.safetensors``, else random weights (seeded; fine for timing, the JSON
says which). The input is a deterministic synthetic clip (moving multi-scale texture).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULT_MARK = "BENCHMARK_RESULT "
MIB = 2**20
GIB = 2**30
#: A "24 GB" card: what the whole device may use (CUDA context included) for the case to fit.
FIT_BUDGET_MIB = 23.5 * 1024
WINDOW = 7

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name fragment, first match wins.
BF16_PEAK_TFLOPS = (
    ("H200", 989.4),
    ("H100 PCIe", 756.5),
    ("H100 NVL", 835.5),
    ("H100", 989.4),  # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
)


# ------------------------------------------------------------------------------------------
# cases and modes


@dataclass(frozen=True)
class Case:
    """One benchmark case: LR size, scale, windows per call, frames timed, optional tiling."""

    width: int
    height: int
    scale: float
    batch: int = 1
    frames: int = 8
    tile: int | None = None
    model: str | None = None

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}x{self.scale:g}"

    @property
    def lr_size(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def out_size(self) -> tuple[int, int]:
        # What savsr.Upscale(sx=scale) produces for an RGB clip (rounded), used by every mode.
        return max(1, int(math.floor(self.height * self.scale + 0.5))), max(1, int(math.floor(self.width * self.scale + 0.5)))

    @property
    def warmup(self) -> int:
        """Output frames before the timed ones (two batches; the plugin computes them all)."""
        return 2 * self.batch

    @property
    def length(self) -> int:
        """Clip length: warm-up + timed frames + the window radius after the last one."""
        return self.warmup + self.frames + WINDOW // 2


def parse_case(spec: str, defaults: dict[str, Any] | None = None) -> Case:
    """``WxHxS`` with optional ``:bBATCH``, ``:nFRAMES``, ``:tTILE``, ``:mMODEL`` suffixes."""
    parts = spec.strip().split(":")
    try:
        w, h, s = parts[0].lower().split("x")
        kw: dict[str, Any] = dict(defaults or {})
        kw.update(width=int(w), height=int(h), scale=float(s))
        for p in parts[1:]:
            key, val = p[0], p[1:]
            if key == "b":
                kw["batch"] = int(val)
            elif key == "n":
                kw["frames"] = int(val)
            elif key == "t":
                kw["tile"] = int(val) or None
            elif key == "m":
                kw["model"] = val
            else:
                raise ValueError
    except (ValueError, IndexError):
        raise SystemExit(f"benchmark: bad case {spec!r}: expected WIDTHxHEIGHTxSCALE[:bBATCH][:nFRAMES][:tTILE][:mMODEL]")
    return Case(**kw)


#: The quick CPU case: compact model, small frames, every mode (naive included) in < 2 min.
QUICK_CASE = Case(64, 64, 2.0, batch=4, frames=8, model="savsr-s")
CPU_CASES = (Case(64, 64, 2.0, batch=4, frames=16, model="savsr-s"),)
GPU_CASES = (
    Case(320, 180, 4.0, batch=8, frames=64),  # the published runtime case (232 ms/frame)
    Case(960, 540, 2.0, batch=4, frames=16),  # 1080p output
    Case(1920, 1080, 2.0, batch=1, frames=8),  # 4K output; must fit in 24 GB
)


@dataclass(frozen=True)
class ModeSpec:
    """How one subprocess runs the model. ``kind``: model (raw/naive/variants), engine, plugin."""

    label: str
    kind: str = "model"
    reference: bool = False
    fuse: bool = True
    precision: str = "fp32"  # fp32 | fp16 | bf16
    cast: str = "half"  # half: weights and inputs converted; autocast: fp32 weights + autocast
    channels_last: bool = False
    batch: int | None = None  # None: the case's batch
    compile: str | None = None  # torch.compile mode ("default", "max-autotune-no-cudagraphs", ...)
    tf32: bool = False
    cudnn_benchmark: bool = False
    conv_part: bool = True  # also time the convolution-heavy part (features) alone
    null_model: bool = False  # plugin kind: replace the model by a no-op (measures the overhead alone)
    backend: str | None = None  # engine kind: an exported-graph backend (ort, ov, trt) instead of PyTorch

    def describe(self) -> str:
        if self.backend:
            return f"engine, backend={self.backend} (exported ONNX graph, vssavsr.engine.backends)"
        if self.kind != "model":
            return self.kind + (" with a no-op model (host/VapourSynth overhead only)" if self.null_model else "")
        bits = ["reference" if self.reference else ("fused" if self.fuse else "unfused"), self.precision]
        if self.precision != "fp32":
            bits.append(self.cast)
        elif self.tf32:
            bits.append("tf32")
        if self.channels_last:
            bits.append("channels-last")
        if self.cudnn_benchmark:
            bits.append("cudnn-benchmark")
        if self.compile:
            bits.append(f"compile={self.compile}")
        return ", ".join(bits)


def default_modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    """The modes of the main table for ``device`` ("cpu" or "cuda")."""
    cuda = device == "cuda"
    raw = ModeSpec(
        "raw",
        precision=args.precision or ("fp16" if cuda else "fp32"),
        cast=args.cast,
        channels_last=True if args.channels_last is None else args.channels_last,
        compile=args.compile,
        cudnn_benchmark=cuda,
    )
    return {
        "raw": raw,
        "engine": ModeSpec("engine", kind="engine", conv_part=False),
        "plugin": ModeSpec("plugin", kind="plugin", conv_part=False),
        "overhead": ModeSpec("overhead", kind="plugin", conv_part=False, null_model=True),
        "naive": ModeSpec("naive", reference=True, fuse=False, precision="fp32", batch=1, conv_part=False),
        **{b: ModeSpec(b, kind="engine", conv_part=False, backend=b) for b in ("ort", "ov", "trt")},
    }


def lever_variants(device: str, raw: ModeSpec) -> list[ModeSpec]:
    """One-lever-at-a-time variants of the raw fast path (``--sweep``)."""
    v = [
        replace(raw, label="lever:unfused-bn", fuse=False),
        replace(raw, label="lever:batch-1", batch=1),
        replace(raw, label="lever:channels-last-" + ("off" if raw.channels_last else "on"), channels_last=not raw.channels_last),
    ]
    if device == "cuda":
        v += [
            replace(raw, label="lever:fp32", precision="fp32", tf32=False),
            replace(raw, label="lever:fp32-tf32", precision="fp32", tf32=True),
            replace(raw, label="lever:fp16-autocast", precision="fp16", cast="autocast"),
            replace(raw, label="lever:bf16", precision="bf16"),
            replace(raw, label="lever:no-cudnn-benchmark", cudnn_benchmark=False),
        ]
        if raw.compile is None:
            v += [
                replace(raw, label="lever:compile", compile="max-autotune-no-cudagraphs"),
                replace(raw, label="lever:compile-cudagraphs", compile="reduce-overhead"),
            ]
    return v


# ------------------------------------------------------------------------------------------
# synthetic input


def synth_frames(length: int, height: int, width: int, seed: int = 0):
    """(length, 3, h, w) float32 in [0, 1]: drifting multi-scale colour texture with sharp
    edges and a little grain; deterministic for a seed, detailed at any size."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = []
    for _ in range(6):
        f = rng.uniform(0.01, 0.25)
        ang = rng.uniform(0, np.pi)
        waves.append((f * np.cos(ang), f * np.sin(ang), rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.1),
                      rng.uniform(0.3, 1.0, size=3).astype(np.float32)))
    vy, vx = 0.37, 0.81  # global motion, LR pixels per frame
    out = np.empty((length, 3, height, width), np.float32)
    base = rng.uniform(0.3, 0.7, size=3).astype(np.float32)
    for t in range(length):
        y = yy - vy * t
        x = xx - vx * t
        img = np.broadcast_to(base[:, None, None], (3, height, width)).copy()
        for fy, fx, ph, amp, col in waves:
            img += (amp * np.sin(2 * np.pi * (fy * y + fx * x) + ph))[None] * col[:, None, None]
        # a moving checkerboard patch (hard edges) in the middle third
        cell = max(3, min(height, width) // 12)
        chk = ((np.floor((x + 2.3 * t) / cell) + np.floor(y / cell)) % 2).astype(np.float32)
        mask = (np.abs(yy - height / 2) < height / 6) & (np.abs(xx - width / 2) < width / 6)
        img[:, mask] = (0.15 + 0.7 * chk[mask])[None] * np.array([1.0, 0.9, 0.8], np.float32)[:, None]
        img += rng.normal(0, 0.01, size=img.shape).astype(np.float32)
        out[t] = np.clip(img, 0.0, 1.0)
    return out


# ------------------------------------------------------------------------------------------
# helpers used by the children (and by tests)


def dtype_of(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def prepare_net(net, spec: ModeSpec, device):
    """Put a loaded network into the state ``spec`` asks for (eval, reference or fused, dtype,
    memory format) on ``device``; returns the network."""
    import torch

    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.set_reference_mode(spec.reference)
    if spec.fuse and not spec.reference:
        net.fuse_for_inference()
    net.to(device)
    if spec.precision != "fp32" and spec.cast == "half":
        net.to(dtype_of(spec.precision))
    if spec.channels_last:
        net.use_channels_last()
    return net


def input_dtype(spec: ModeSpec):
    import torch

    return dtype_of(spec.precision) if spec.precision != "fp32" and spec.cast == "half" else torch.float32


def make_model_fn(net, spec: ModeSpec, device, out_size, tile: int | None = None):
    """``fn(frames) -> (B, 3, H, W)``: one model call as ``spec`` says (autocast, compile, tiles)."""
    import contextlib

    import torch

    model = net
    if spec.compile:
        model = torch.compile(net, mode=None if spec.compile == "default" else spec.compile, dynamic=False)
    if spec.precision != "fp32" and spec.cast == "autocast":
        ctx = lambda: torch.autocast(device.type, dtype=dtype_of(spec.precision))  # noqa: E731
    else:
        ctx = contextlib.nullcontext

    def call(frames, size, scale=None, offset=None):
        with ctx():
            return model(frames, out_size=tuple(size), scale=scale, offset=offset)

    if tile:
        from vssavsr.engine import tiling

        def fn(frames):
            h, w = frames.shape[-2:]
            scale = (out_size[0] / h, out_size[1] / w)
            return tiling.tiled_forward(lambda f, s, sc, off: call(f, s, sc, off), frames, out_size, scale, (0.0, 0.0), tile)
    else:

        def fn(frames):
            return call(frames, out_size)

    return fn


def make_features_fn(net, spec: ModeSpec, device, out_size):
    """``fn(frames) -> (A, R)``: the convolution-heavy part alone (alignment, fusion, reconstruction)."""
    import contextlib

    import torch

    from vssavsr.model.savsr import pad_to_even

    feats = net.features
    if spec.compile:
        feats = torch.compile(net.features, mode=None if spec.compile == "default" else spec.compile, dynamic=False)
    if spec.precision != "fp32" and spec.cast == "autocast":
        ctx = lambda: torch.autocast(device.type, dtype=dtype_of(spec.precision))  # noqa: E731
    else:
        ctx = contextlib.nullcontext

    def fn(frames):
        b, _, _, h, w = frames.shape
        inv = frames.new_tensor([h / out_size[0], w / out_size[1]]).expand(b, 2)
        with ctx():
            return feats(pad_to_even(frames), inv)

    return fn


def window_table(length: int):
    """(length, 7) int64: the input frames of each output frame's window (reflection at the ends)."""
    import torch

    from vssavsr.engine.windows import window_indices

    return torch.tensor([window_indices(n, length, None, WINDOW) for n in range(length)], dtype=torch.int64)


def _rss_mib() -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of this process in MiB, from /proc (None where unavailable)."""
    cur = hwm = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    if hwm is None:
        try:
            import resource

            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except Exception:  # pragma: no cover - not Linux
            pass
    return cur, hwm


def _reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryPeak:
    """Peak memory of the timed phase: RSS always, CUDA allocator and device figures on CUDA."""

    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss_reset = _reset_rss_peak()
        self.rss_base, _ = _rss_mib()

    def stop(self) -> dict[str, Any]:
        import torch

        out: dict[str, Any] = {}
        cur, hwm = _rss_mib()
        out["rss_base_mib"] = self.rss_base
        out["peak_rss_mib"] = hwm
        out["peak_rss_scope"] = "timed frames" if self.rss_reset else "whole process"
        if self.cuda:
            torch.cuda.synchronize(self.device)
            out["peak_cuda_alloc_mib"] = torch.cuda.max_memory_allocated(self.device) / MIB
            out["peak_cuda_reserved_mib"] = torch.cuda.max_memory_reserved(self.device) / MIB
            free, total = torch.cuda.mem_get_info(self.device)
            out["device_used_mib"] = (total - free) / MIB
            out["device_total_mib"] = total / MIB
            out["peak_mem_mib"] = out["peak_cuda_alloc_mib"]
            out["peak_mem_kind"] = "torch.cuda.max_memory_allocated"
        else:
            out["peak_mem_mib"] = hwm
            out["peak_mem_kind"] = "peak RSS"
        return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _set_backend_flags(spec: ModeSpec, device) -> None:
    import torch

    if device.type == "cuda" and spec.kind == "model":
        torch.backends.cudnn.benchmark = bool(spec.cudnn_benchmark)
        torch.backends.cudnn.allow_tf32 = bool(spec.tf32)
        torch.backends.cuda.matmul.allow_tf32 = bool(spec.tf32)


# ------------------------------------------------------------------------------------------
# children


def _child_model(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    import numpy as np
    import torch

    from vssavsr.engine import runner as engine

    batch = spec.batch or case.batch
    out: dict[str, Any] = {"batch": batch}
    windows = window_table(case.length).to(device)
    first = case.warmup
    timed = list(range(first, first + case.frames))
    warm = list(range(0, case.warmup))

    if spec.kind == "engine":
        if spec.backend:  # the exported graph through a runtime; export (first use) is outside the timing
            from vssavsr.engine import backends

            run = backends.benchmark_runner(spec.backend, job["checkpoint"], case.lr_size, case.out_size, device)
        else:
            run = engine.get_runner(job["checkpoint"], device, device.type == "cuda")
        out["engine_fp16"] = run.fp16
        frames = torch.from_numpy(frames_np).to(device)
        tile = case.tile

        def fn(x):
            return run(x, case.out_size, (case.out_size[0] / case.height, case.out_size[1] / case.width), (0.0, 0.0), tile)

        feats_fn = None
    else:
        from vssavsr.model import load_checkpoint

        _set_backend_flags(spec, device)
        net, _ = load_checkpoint(job["checkpoint"], map_location="cpu")
        net = prepare_net(net, spec, device)
        frames = torch.from_numpy(frames_np).to(device, input_dtype(spec))
        fn = make_model_fn(net, spec, device, case.out_size, case.tile)
        feats_fn = make_features_fn(net, spec, device, case.out_size) if spec.conv_part and not case.tile else None

    def batches(indices):
        return [indices[i : i + batch] for i in range(0, len(indices), batch)]

    with torch.inference_mode():
        # Warm-up: one call on the CPU; on CUDA three (cuDNN autotuning, torch.compile, CUDA graphs).
        t0 = time.perf_counter()
        warm_groups = batches(warm) or [[first]]
        for k in range(1 if device.type == "cpu" else 3):
            y = fn(frames[windows[warm_groups[k % len(warm_groups)]]])
            del y
        _sync(device)
        out["warmup_s"] = time.perf_counter() - t0

        groups = batches(timed)
        inputs = [windows[g] for g in groups]
        peak = MemoryPeak(device)
        peak.start()
        call_ms = []
        _sync(device)
        t_start = time.perf_counter()
        for idx in inputs:
            t = time.perf_counter()
            y = fn(frames[idx])
            if device.type == "cpu":
                call_ms.append((time.perf_counter() - t) * 1e3)
            del y
        _sync(device)
        total = time.perf_counter() - t_start
        out.update(peak.stop())
        out["ms_per_frame"] = total * 1e3 / len(timed)
        out["frames_timed"] = len(timed)
        out["calls"] = len(inputs)
        out["call_ms"] = call_ms

        if feats_fn is not None:
            conv_groups = inputs[: max(1, min(len(inputs), 4))]
            feats_fn(frames[conv_groups[0]])  # compile / autotune
            _sync(device)
            t = time.perf_counter()
            n = 0
            for idx in conv_groups:
                feats_fn(frames[idx])
                n += idx.shape[0]
            _sync(device)
            out["conv_ms_per_frame"] = (time.perf_counter() - t) * 1e3 / n

        if job.get("save_ref"):  # output frame ``first`` (same call shape as timed: no recompiles)
            y = fn(frames[inputs[0]])
            arr = y[0].float().clamp(0.0, 1.0).cpu().numpy()
            np.save(job["save_ref"], arr)
    return out


class NullRunner:
    """Stands in for the engine's ModelRunner: moves the frames to the device and returns an
    output of the right size made from them (one device write), with no model in between. The
    plugin path around it is unchanged, so its time is the path's own overhead."""

    def __init__(self, real):
        self.real = real
        self.net, self.device, self.fp16 = real.net, real.device, real.fp16
        self.num_frames, self.lock = real.num_frames, real.lock

    def __call__(self, frames, out_size, scale, offset=(0.0, 0.0), tile=None, tile_pad=None):
        import torch

        with self.lock, torch.inference_mode():
            frames = frames.to(self.device, torch.float32, non_blocking=True)
            centre = frames[:, frames.shape[1] // 2, :, :1, :1]
            return centre.expand(-1, -1, *out_size).contiguous()


def _install_null_runner() -> None:
    from vssavsr.engine import runner as engine

    real_get = engine.get_runner

    def get_runner(checkpoint, device, fp16):
        return NullRunner(real_get(checkpoint, device, fp16))

    engine.get_runner = get_runner


def pull_frames(node, inflight: int | None = None) -> None:
    """Request every frame of ``node`` in order with ``inflight`` requests outstanding (default:
    the core's thread count), like vspipe does, and drop them. (``VideoNode.frames()`` is not
    used: with torch imported it adds ~2-5 ms per frame here, which vspipe does not.)"""
    import threading

    total = node.num_frames
    if not inflight:
        import vapoursynth as vs

        inflight = vs.core.num_threads
    inflight = max(1, inflight)
    lock = threading.Lock()
    done = threading.Event()
    state = {"next": 0, "done": 0, "error": None}

    def request() -> None:
        with lock:
            n = state["next"]
            if n >= total:
                return
            state["next"] = n + 1
        node.get_frame_async(n, callback)

    def callback(frame, error) -> None:
        if frame is not None:
            frame.close()
        with lock:
            if error is not None and state["error"] is None:
                state["error"] = error
            state["done"] += 1
            finished = state["done"] == total
        if finished:
            done.set()
        else:
            request()

    for _ in range(min(inflight, total)):
        request()
    done.wait()
    if state["error"] is not None:
        raise RuntimeError(f"frame request failed: {state['error']}")


def _child_plugin(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    import numpy as np

    try:
        import vapoursynth as vs
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"vapoursynth is not importable ({type(exc).__name__}: {exc})"}
    core = vs.core
    upscale = None
    how = None
    try:
        upscale = core.savsr.Upscale
        how = "core.savsr.Upscale"
    except AttributeError:
        try:
            import vssavsr

            upscale = vssavsr.upscale
            how = "vssavsr.upscale (core.savsr not registered)"
        except Exception as exc:  # noqa: BLE001
            return {"skipped": f"neither core.savsr.Upscale nor vssavsr.upscale is available ({exc})"}

    length, _, h, w = frames_np.shape
    blank = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=length, fpsnum=24, fpsden=1)

    def fill(n, f):
        fo = f.copy()
        for p in range(3):
            np.asarray(fo[p])[:] = frames_np[n, p]
        return fo

    src = core.std.ModifyFrame(blank, blank, fill)
    if spec.null_model:
        _install_null_runner()
    kwargs = dict(
        sx=case.out_size[1] / case.width,
        sy=case.out_size[0] / case.height,
        checkpoint=job["checkpoint"],
        device_index=device.index or 0 if device.type == "cuda" else -1,
        batch=case.batch,
    )
    if case.tile:
        kwargs["tile"] = case.tile
    try:
        up = upscale(src, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"{how} failed: {type(exc).__name__}: {exc}"}
    if (up.height, up.width) != case.out_size:
        return {"skipped": f"{how} produced {up.width}x{up.height}, expected {case.out_size[1]}x{case.out_size[0]}"}
    out: dict[str, Any] = {"via": how, "batch": case.batch, "vs_threads": core.num_threads}

    # Cost of the source alone (a decoder would have one too), on a separate node of the same
    # kind (so that nothing is cached for the timed run), after one frame of warm-up.
    probe = core.std.ModifyFrame(blank, blank, fill)
    probe.get_frame(0).close()
    t = time.perf_counter()
    pull_frames(probe[1:])
    out["source_ms_per_frame"] = (time.perf_counter() - t) * 1e3 / max(1, length - 1)
    del probe

    first = case.warmup
    t = time.perf_counter()
    for n in range(first):
        up.get_frame(n).close()
    out["warmup_s"] = time.perf_counter() - t
    peak = MemoryPeak(device)
    peak.start()
    t = time.perf_counter()
    pull_frames(up[first : first + case.frames])
    total = time.perf_counter() - t
    out.update(peak.stop())
    out["ms_per_frame"] = total * 1e3 / case.frames
    out["frames_timed"] = case.frames
    if job.get("save_ref"):
        f = up.get_frame(first)
        np.save(job["save_ref"], np.stack([np.asarray(f[p]) for p in range(3)]).astype(np.float32))
        f.close()
    return out


def child_main(job: dict) -> dict:
    import numpy as np
    import torch

    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    warnings.simplefilter("ignore", RuntimeWarning)
    spec = ModeSpec(**job["spec"])
    case = Case(**job["case"])
    device = torch.device(job["device"])
    frames_np = np.load(job["frames"])
    t = time.perf_counter()
    if spec.kind == "plugin":
        res = _child_plugin(job, spec, case, device, frames_np)
    else:
        res = _child_model(job, spec, case, device, frames_np)
    res["child_s"] = time.perf_counter() - t
    res["vssavsr_path"] = str(Path(sys.modules["vssavsr"].__file__).parent) if "vssavsr" in sys.modules else None
    if device.type == "cuda":
        res["gpu_name"] = torch.cuda.get_device_name(device)
    return res


# ------------------------------------------------------------------------------------------
# parent


def _load_net_config(checkpoint: str):
    from vssavsr.model import load_checkpoint

    net, meta = load_checkpoint(checkpoint, map_location="cpu")
    return net.config, meta


def make_random_checkpoint(model, path: Path, seed: int = 0) -> Path:
    """Random weights for ``model`` (a name or a config; seeded), with non-trivial BatchNorm
    statistics so that folding BN is not a no-op."""
    import torch

    from vssavsr.model import SAVSR, save_checkpoint

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SAVSR.from_config(model).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.4 * torch.rand(m.bias.shape, generator=g) - 0.2)
    save_checkpoint(net, str(path), metadata={"note": f"random weights (seed {seed}) for benchmarking"})
    return path


def resolve_weights(model: str, checkpoint: str | None, tmp: Path) -> tuple[str, str]:
    """(checkpoint path, description) for a model name."""
    if checkpoint:
        return checkpoint, f"checkpoint {checkpoint}"
    shipped = REPO / "vssavsr" / "weights" / f"{model}.safetensors"
    if shipped.is_file():
        return str(shipped), f"shipped {shipped.relative_to(REPO)}"
    path = tmp / f"random-{model}.safetensors"
    if not path.exists():
        make_random_checkpoint(model, path)
    return str(path), f"random weights (seed 0; {model} is not shipped), fine for timing"


def estimate_peak_bytes(config, case: Case, spec: ModeSpec) -> int | None:
    """Peak bytes of tensors alive during one call, tracked on the ``meta`` device (no compute):
    activations only (weights and inputs excluded); cuDNN workspaces and allocator slack are not
    counted. A prediction, not a measurement."""
    import weakref
    from collections import Counter

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from vssavsr.model import SAVSR

    class Track(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0
            self.count: Counter = Counter()
            self.size: dict[int, int] = {}

        def _dec(self, key):
            self.count[key] -= 1
            if self.count[key] == 0:
                del self.count[key]
                self.live -= self.size.pop(key)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            res = func(*args, **(kwargs or {}))
            for t in tree_flatten(res)[0]:
                if isinstance(t, torch.Tensor):
                    st = t.untyped_storage()
                    key = st._cdata
                    if key not in self.size:
                        self.size[key] = st.nbytes()
                        self.live += st.nbytes()
                        self.peak = max(self.peak, self.live)
                    self.count[key] += 1
                    weakref.finalize(t, self._dec, key)
            return res

    if case.tile:
        return None
    try:
        dt = input_dtype(spec)
        with torch.device("meta"):
            net = SAVSR(config).eval()
            net.set_reference_mode(spec.reference)
            if spec.fuse and not spec.reference:
                net.fuse_for_inference()
            net.to(dt)
            x = torch.empty(spec.batch or case.batch, WINDOW, 3, *case.lr_size, dtype=dt)
        tr = Track()
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tr:
                y = net(x, out_size=case.out_size)
                del y
        return tr.peak
    except Exception:  # noqa: BLE001 - an estimate only
        return None


def run_child(job: dict, timeout: float, env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            res = json.loads(line[len(RESULT_MARK):])
            res["wall_s"] = wall
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict], macs: int, conv_macs: int) -> dict:
    """Median over rounds of one mode's child results."""
    ok = [r for r in runs if "ms_per_frame" in r]
    if not ok:
        bad = runs[0] if runs else {"error": "not run"}
        return {k: bad[k] for k in ("skipped", "error") if k in bad} or {"error": "no result"}
    ms = _median([r["ms_per_frame"] for r in ok])
    res: dict[str, Any] = {
        "fps": 1e3 / ms,
        "ms_per_frame": ms,
        "tflops": 2 * macs / (ms * 1e-3) / 1e12,
        "samples_ms_per_frame": [r["ms_per_frame"] for r in ok],
        "rounds": len(ok),
    }
    for r in ok:
        if r.get("peak_rss_mib") is not None and r.get("rss_base_mib") is not None:
            r["peak_rss_delta_mib"] = r["peak_rss_mib"] - r["rss_base_mib"]
    for key in ("peak_mem_mib", "peak_rss_mib", "rss_base_mib", "peak_rss_delta_mib", "peak_cuda_alloc_mib", "peak_cuda_reserved_mib",
                "device_used_mib", "source_ms_per_frame", "warmup_s"):
        val = _median([r.get(key) for r in ok])
        if val is not None:
            res[key] = val
    for key in ("peak_mem_kind", "peak_rss_scope", "batch", "via", "engine_fp16", "gpu_name", "device_total_mib",
                "vssavsr_path"):
        if key in ok[0]:
            res[key] = ok[0][key]
    conv = _median([r.get("conv_ms_per_frame") for r in ok])
    if conv is not None:
        res["conv_ms_per_frame"] = conv
        res["conv_tflops"] = 2 * conv_macs / (conv * 1e-3) / 1e12
    errors = [r.get("error") for r in runs if "error" in r]
    if errors:
        res["errors"] = errors
    return res


def bf16_peak(gpu_name: str | None, override: float | None) -> float | None:
    if override:
        return override
    if not gpu_name:
        return None
    for frag, peak in BF16_PEAK_TFLOPS:
        if frag.lower() in gpu_name.lower():
            return peak
    return None


def compare_refs(a: Path, b: Path) -> float | None:
    import numpy as np

    if not (a.is_file() and b.is_file()):
        return None
    x, y = np.load(a), np.load(b)
    if x.shape != y.shape:
        return None
    return float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())


def fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


def print_case_table(result: dict) -> None:
    print(f"\n== {result['case']}  model={result['model']}  LR {result['lr_size'][1]}x{result['lr_size'][0]} -> "
          f"{result['out_size'][1]}x{result['out_size'][0]}  batch={result['batch']}  frames={result['frames']}"
          f"{'  tile=' + str(result['tile']) if result['tile'] else ''}  "
          f"{result['macs_per_frame'] / 1e9:.2f} GMAC/frame")
    head = (f"{'mode':<28} {'fps':>8} {'ms/frame':>10} {'peak MiB':>9} {'+RSS MiB':>9} {'TFLOP/s':>8} "
            f"{'conv TF/s':>9}  config")
    print(head)
    print("-" * len(head))
    for label, m in result["modes"].items():
        desc = result["configs"].get(label, "")
        if "fps" not in m:
            why = m.get("skipped") or m.get("error")
            print(f"{label:<28} {'skipped' if 'skipped' in m else 'ERROR':>8}  {why}")
            continue
        print(f"{label:<28} {m['fps']:>8.2f} {m['ms_per_frame']:>10.1f} {fmt(m.get('peak_mem_mib'), '.0f'):>9} "
              f"{fmt(m.get('peak_rss_delta_mib'), '.0f'):>9} "
              f"{fmt(m.get('tflops'), '.3f'):>8} {fmt(m.get('conv_tflops'), '.3f'):>9}  {desc}")
    r, a = result["ratios"], result["agreement"]
    print(f"raw/naive speed-up {fmt(r.get('fast_over_naive'), '.2f')}x   plugin/raw time {fmt(r.get('plugin_over_raw'), '.2f')}x   "
          f"(excl. source {fmt(r.get('plugin_over_raw_excl_source'), '.2f')}x)   plugin/engine time "
          f"{fmt(r.get('plugin_over_engine'), '.2f')}x   engine/raw time {fmt(r.get('engine_over_raw'), '.2f')}x   "
          f"overhead/raw {fmt(r.get('overhead_over_raw'), '.2f')}")
    print(f"max |raw - naive| = {fmt(a.get('raw_vs_naive_255'), '.2g')}/255   max |plugin - engine| = "
          f"{fmt(a.get('plugin_vs_engine_255'), '.2g')}/255   max |plugin - naive| = {fmt(a.get('plugin_vs_naive_255'), '.2g')}/255")
    for b in ("ort", "ov", "trt"):
        if r.get(f"engine_over_{b}") is not None:
            print(f"backend {b}: {r[f'engine_over_{b}']:.2f}x the engine's speed, max |{b} - engine| = "
                  f"{fmt(a.get(f'{b}_vs_engine_255'), '.2g')}/255")
    print("peak MiB: " + ("torch.cuda.max_memory_allocated" if any(m.get("peak_mem_kind", "").startswith("torch") for m in result["modes"].values())
                          else "process peak RSS during the timed frames") + "; +RSS MiB: peak RSS above the RSS before timing")
    if result.get("est_peak_mib") is not None:
        print(f"estimated activation peak of one raw call (meta device): {result['est_peak_mib']:.0f} MiB")
    if result.get("targets"):
        print("targets: " + "; ".join(f"{k}: {v}" for k, v in result["targets"].items()))


def evaluate_targets(result: dict, device: str, peak_tflops: float | None) -> dict:
    """The issue's GPU targets, where this run can tell (CPU runs: not applicable)."""
    if device != "cuda":
        return {"note": "GPU targets; not applicable to a CPU run"}
    t: dict[str, Any] = {}
    r, a, modes = result["ratios"], result["agreement"], result["modes"]
    if r.get("fast_over_naive") is not None:
        ok = r["fast_over_naive"] >= 3 and (a.get("raw_vs_naive_255") is not None and a["raw_vs_naive_255"] <= 2)
        t["raw >= 3x naive at <= 2/255"] = "PASS" if ok else "FAIL"
    conv = modes.get("raw", {}).get("conv_tflops")
    if conv is not None and peak_tflops:
        frac = conv / peak_tflops
        result["conv_fraction_of_bf16_peak"] = frac
        t[f"conv part >= 40% of {peak_tflops:g} TFLOP/s"] = f"{'PASS' if frac >= 0.4 else 'FAIL'} ({100 * frac:.1f}%)"
    used = modes.get("raw", {}).get("device_used_mib")
    if result["case"] == "1920x1080x2" and used is not None:
        t["fits 24 GB"] = f"{'PASS' if used <= FIT_BUDGET_MIB else 'FAIL'} ({used / 1024:.1f} GiB on the device)"
    if r.get("plugin_over_raw") is not None:
        t["plugin <= 1.2x raw"] = "PASS" if r["plugin_over_raw"] <= 1.2 else "FAIL"
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the small CPU case (< 2 min on 2 cores)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--model", choices=("savsr", "savsr-s"), default=None,
                    help="network (default: savsr on CUDA; the quick/CPU case uses savsr-s)")
    ap.add_argument("--checkpoint", default=None, help="weights file (default: shipped, else random)")
    ap.add_argument("--cases", default=None, help="comma-separated WxHxS[:bB][:nN][:tTILE] (default: per device)")
    ap.add_argument("--modes", default="raw,engine,plugin,overhead,naive",
                    help="subset of raw,engine,plugin,overhead,naive,ort,ov,trt (overhead: the plugin path with a no-op model; "
                         "ort/ov/trt: the engine with an exported-graph backend)")
    ap.add_argument("--rounds", type=int, default=None, help="subprocess rounds per mode (median reported; default 2, 3 on CPU non-quick)")
    ap.add_argument("--frames", type=int, default=None, help="timed output frames per round (overrides the case)")
    ap.add_argument("--batch", type=int, default=None, help="windows per call (overrides the case)")
    ap.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=None, help="raw mode (default fp16 on CUDA, fp32 on CPU)")
    ap.add_argument("--cast", choices=("half", "autocast"), default="half", help="raw mode: convert the weights, or autocast")
    ap.add_argument("--channels-last", dest="channels_last", action="store_true", default=None)
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    ap.add_argument("--compile", default=None, metavar="MODE",
                    help="raw mode: torch.compile (default | max-autotune-no-cudagraphs | reduce-overhead)")
    ap.add_argument("--sweep", action="store_true", help="also time one-lever variants of the raw mode")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in every child (default 1 on CPU)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak (default: from the GPU name)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per child (default 110 quick, 900 otherwise)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--keep", default=None, help="keep frames/outputs in this folder (default: a temp dir)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child is not None:
        res = child_main(json.loads(args.child))
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0

    import numpy as np
    import torch

    from vssavsr.model.flops import count_macs

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not args.quick else "cpu"
    if args.quick:
        device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmark: --device cuda but CUDA is not available")
    threads = args.threads or (1 if device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)

    if args.cases:
        # A named size inherits its default batch/frames (GPU list on CUDA, CPU list on the CPU).
        known = {(c.width, c.height, c.scale): c for c in (*(GPU_CASES if device == "cuda" else CPU_CASES),)}
        cases = []
        for spec in (s for s in args.cases.split(",") if s.strip()):
            c = parse_case(spec)
            base = known.get((c.width, c.height, c.scale))
            cases.append(parse_case(spec, {"batch": base.batch, "frames": base.frames, "model": base.model}) if base else c)
    elif args.quick:
        cases = [QUICK_CASE]
    else:
        cases = list(GPU_CASES if device == "cuda" else CPU_CASES)
    cases = [
        replace(
            c,
            model=args.model or c.model or ("savsr" if device == "cuda" else "savsr-s"),
            frames=args.frames or c.frames,
            batch=args.batch or c.batch,
        )
        for c in cases
    ]
    rounds = args.rounds or (3 if device == "cpu" and not args.quick else 2)
    timeout = args.timeout or (110.0 if args.quick else 900.0)
    all_modes = default_modes(device, args)
    wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in wanted:
        if m not in all_modes:
            raise SystemExit(f"benchmark: unknown mode {m!r} (use {', '.join(all_modes)})")
    modes = {k: all_modes[k] for k in wanted}
    if args.sweep:
        for v in lever_variants(device, all_modes["raw"]):
            modes[v.label] = v

    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"

    tmp_ctx = tempfile.TemporaryDirectory(prefix="vssavsr-bench-") if not args.keep else None
    work = Path(args.keep or tmp_ctx.name)
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    meta: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *(sys.argv[1:] if argv is None else argv)]),
        "device": device,
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "rounds": rounds,
        "quick": bool(args.quick),
        "input": "synthetic moving texture (seed 0), RGB float32",
        "definitions": {
            "fps, ms_per_frame": "median over rounds (one fresh subprocess per mode and round, modes interleaved)",
            "peak_mem_mib": "CPU: process peak RSS during the timed frames; CUDA: torch.cuda.max_memory_allocated",
            "tflops": "2 * model MACs (vssavsr.model.flops.count_macs) per frame / time per frame",
            "conv_tflops": "the same for alignment + fusion + reconstruction, timed alone on the raw mode",
            "fast_over_naive": "raw fps / naive fps",
            "plugin_over_raw": "plugin ms/frame / raw ms/frame (1.2 = 20 % overhead)",
            "plugin_over_engine": "plugin ms/frame / engine ms/frame (VapourSynth + frame conversion only)",
            "plugin_over_raw_excl_source": "(plugin - source_ms_per_frame) / raw, source = the synthetic RGBS clip",
            "overhead_over_raw": "plugin path with a no-op model, ms/frame / raw ms/frame: the host-side share if nothing overlaps",
            "time_over_raw": "lever variants: variant ms/frame / raw ms/frame (> 1: the raw setting helps)",
            "agreement": "max |a - b| of one output frame clamped to [0, 1]; *_255 in units of 1/255",
        },
    }
    if device == "cuda":
        meta["gpu_name"] = torch.cuda.get_device_name(0)
        meta["bf16_peak_tflops"] = bf16_peak(meta["gpu_name"], args.peak_tflops)
    try:
        import vapoursynth as vs

        meta["vapoursynth"] = str(vs.__version__)
    except Exception as exc:  # noqa: BLE001
        meta["vapoursynth"] = f"not importable ({type(exc).__name__}): plugin mode skipped"
    print(f"SAVSR benchmark on {device}" + (f" ({meta['gpu_name']})" if device == "cuda" else f" ({os.cpu_count()} cores, {threads} torch thread(s))")
          + f", {rounds} round(s) per mode, torch {torch.__version__}", flush=True)

    results = []
    try:
        for case in cases:
            ckpt, weights = resolve_weights(case.model, args.checkpoint, work)
            config, _ = _load_net_config(ckpt)
            if args.checkpoint:  # the network is the checkpoint's, whatever the case's default
                from vssavsr.model import NAMED_CONFIGS

                named = [k for k, v in NAMED_CONFIGS.items() if v == config]
                case = replace(case, model=named[0] if named else f"custom ({Path(ckpt).name})")
            scale = (case.out_size[0] / case.height, case.out_size[1] / case.width)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                macs = count_macs(config, case.lr_size, scale=scale)
            conv_macs = sum(macs["by_module"].get(k, 0) for k in ("alignment", "fusion", "reconstruction"))
            frames_path = work / f"frames-{case.name}.npy"
            np.save(frames_path, synth_frames(case.length, case.height, case.width))
            est = estimate_peak_bytes(config, case, modes["raw"]) if "raw" in modes else None
            base_job = {
                "checkpoint": ckpt,
                "device": "cuda:0" if device == "cuda" else "cpu",
                "frames": str(frames_path),
                "threads": threads,
                "case": asdict(case),
            }
            runs: dict[str, list[dict]] = {k: [] for k in modes}
            labels = list(modes)
            for r in range(rounds):
                order = labels[r % len(labels):] + labels[: r % len(labels)]  # rotate: interleaved, fair
                for label in order:
                    spec = modes[label]
                    if r > 0 and runs[label] and "skipped" in runs[label][0]:
                        continue
                    job = dict(base_job, spec=asdict(spec))
                    if r == 0 and label in ("raw", "engine", "plugin", "naive", "ort", "ov", "trt"):
                        job["save_ref"] = str(work / f"out-{case.name}-{label}.npy")
                    res = run_child(job, timeout, env)
                    runs[label].append(res)
                    msg = res.get("skipped") or res.get("error")
                    print(f"  [{case.name} round {r + 1}/{rounds}] {label:<26} "
                          + (f"{res['ms_per_frame']:.1f} ms/frame" if "ms_per_frame" in res else f"-- {msg}")
                          + f"  ({res.get('wall_s', 0):.0f} s)", flush=True)
            agg = {k: aggregate(v, 0 if modes[k].null_model else macs["total"], conv_macs) for k, v in runs.items()}
            for k in agg:
                if modes[k].null_model:
                    agg[k].pop("tflops", None)
            ms = {k: v.get("ms_per_frame") for k, v in agg.items()}

            def ratio(a, b):
                return ms[b] / ms[a] if ms.get(a) and ms.get(b) else None

            ratios = {
                "fast_over_naive": ratio("raw", "naive"),  # raw fps / naive fps
                "plugin_over_raw": (ms["plugin"] / ms["raw"]) if ms.get("plugin") and ms.get("raw") else None,
                "plugin_over_engine": (ms["plugin"] / ms["engine"]) if ms.get("plugin") and ms.get("engine") else None,
                "engine_over_raw": (ms["engine"] / ms["raw"]) if ms.get("engine") and ms.get("raw") else None,
            }
            if ms.get("overhead") and ms.get("raw"):
                ratios["overhead_over_raw"] = ms["overhead"] / ms["raw"]  # 0.2 = the 20 % budget, if not overlapped
            src_ms = agg.get("plugin", {}).get("source_ms_per_frame")
            if ratios["plugin_over_raw"] is not None and src_ms is not None:
                # the synthetic source's own cost (a Python ModifyFrame; a decoder would have one too)
                ratios["plugin_over_raw_excl_source"] = (ms["plugin"] - src_ms) / ms["raw"]
            for v in modes:
                if v.startswith("lever:") and ms.get(v) and ms.get("raw"):
                    agg[v]["time_over_raw"] = ms[v] / ms["raw"]  # > 1: this variant is slower than raw
            agreement: dict[str, Any] = {}
            for b in ("ort", "ov", "trt"):
                if ms.get(b) and ms.get("engine"):
                    ratios[f"engine_over_{b}"] = ms["engine"] / ms[b]  # > 1: the backend is faster than PyTorch
            for a, b in (("raw", "naive"), ("plugin", "engine"), ("plugin", "naive"), ("engine", "naive"),
                         ("ort", "engine"), ("ov", "engine"), ("trt", "engine")):
                d = compare_refs(work / f"out-{case.name}-{a}.npy", work / f"out-{case.name}-{b}.npy")
                agreement[f"{a}_vs_{b}_max_abs"] = d
                agreement[f"{a}_vs_{b}_255"] = None if d is None else d * 255
            gpu_name = next((m.get("gpu_name") for m in agg.values() if m.get("gpu_name")), meta.get("gpu_name"))
            result = {
                "case": case.name,
                "model": case.model,
                "weights": weights,
                "lr_size": list(case.lr_size),
                "out_size": list(case.out_size),
                "scale": case.scale,
                "batch": case.batch,
                "frames": case.frames,
                "tile": case.tile,
                "macs_per_frame": macs["total"],
                "conv_macs_per_frame": conv_macs,
                "macs_by_module": macs["by_module"],
                "est_peak_mib": None if est is None else est / MIB,
                "modes": agg,
                "configs": {k: v.describe() for k, v in modes.items()},
                "ratios": ratios,
                "agreement": agreement,
            }
            result["targets"] = evaluate_targets(result, device, bf16_peak(gpu_name, args.peak_tflops))
            results.append(result)
            print_case_table(result)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()

    meta["total_s"] = time.perf_counter() - t_all
    print(f"\ntotal {meta['total_s']:.0f} s")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "cases": results}, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
