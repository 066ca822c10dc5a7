"""The ``plugin`` backend: the full ``core.savsr.Upscale`` path through VapourSynth (frame conversion, windowing,
caches), frames pulled in order from an RGBS source clip; ``overhead``: the same path with a no-op model.

Where VapourSynth is not importable the modes are skipped, saying so. Where it is, a plugin that cannot run is an
error (``Upscale`` raising, a wrong output size), never a skip. Without the native plugin (``core.savsr``), the
same filter is built through ``vssavsr.upscale`` and the result's ``via`` says so."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np
import torch

from vssavsr.engine import runner as engine

from ..cases import Case
from ..child import MemoryPeak
from ..modes import ModeSpec


def modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    return {
        "plugin": ModeSpec("plugin", kind="plugin", conv_part=False),
        "overhead": ModeSpec("overhead", kind="plugin", conv_part=False, null_model=True),
    }


class NullRunner:
    """Stands in for the engine's ModelRunner: moves the frames to the device and returns an
    output of the right size made from them (one device write), with no model in between. The
    plugin path around it is unchanged, so its time is the path's own overhead."""

    def __init__(self, real):
        self.real = real
        self.net, self.device, self.fp16 = real.net, real.device, real.fp16
        self.num_frames, self.lock = real.num_frames, real.lock

    def __call__(self, frames, out_size, scale, offset=(0.0, 0.0), tile=None, tile_pad=None, ensemble=1):
        with self.lock, torch.inference_mode():
            frames = frames.to(self.device, torch.float32, non_blocking=True)
            centre = frames[:, frames.shape[1] // 2, :, :1, :1]
            return centre.expand(-1, -1, *out_size).contiguous()


def install_null_runner() -> None:
    real_get = engine.get_runner

    def get_runner(checkpoint, device, fp16):
        return NullRunner(real_get(checkpoint, device, fp16))

    engine.get_runner = get_runner


def pull_frames(node, inflight: int | None = None) -> None:
    """Request every frame of ``node`` in order with ``inflight`` requests outstanding (default:
    the core's thread count), like vspipe does, and drop them. (``VideoNode.frames()`` is not
    used: with torch imported it adds ~2-5 ms per frame here, which vspipe does not.)"""
    import vapoursynth as vs  # only called where VapourSynth is installed

    total = node.num_frames
    if not inflight:
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


def run(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    try:
        import vapoursynth as vs
    except ImportError as exc:
        return {"skipped": f"VapourSynth is not installed ({type(exc).__name__}: {exc})"}
    import vssavsr
    from vssavsr.plugin import native
    from vssavsr.plugin.arrays import clip_from_arrays, frame_array

    core = vs.core
    try:
        native.ensure_namespace(core)
        upscale, how = core.savsr.Upscale, "core.savsr.Upscale"
    except vs.Error as exc:  # no native plugin built (e.g. a wheel carried to a GPU machine): the same Python path
        upscale, how = vssavsr.upscale, f"vssavsr.upscale (core.savsr not available: {exc})"

    length = len(frames_np)
    src = clip_from_arrays(frames_np)
    if spec.null_model:
        install_null_runner()
    kwargs = dict(
        sx=case.out_size[1] / case.width,
        sy=case.out_size[0] / case.height,
        checkpoint=job["checkpoint"],
        device_index=device.index or 0 if device.type == "cuda" else -1,
        batch=case.batch,
    )
    if case.tile:
        kwargs["tile"] = case.tile
    up = upscale(src, **kwargs)
    if (up.height, up.width) != case.out_size:
        raise RuntimeError(f"{how} produced {up.width}x{up.height}, expected {case.out_size[1]}x{case.out_size[0]}")
    out: dict[str, Any] = {"via": how, "batch": case.batch, "vs_threads": core.num_threads}

    # Cost of the source alone (a decoder would have one too), on a separate node of the same
    # kind (so that nothing is cached for the timed run), after one frame of warm-up.
    probe = clip_from_arrays(frames_np)
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
        np.save(job["save_ref"], frame_array(f).astype(np.float32))
        f.close()
    return out
