"""The child process that measures one mode (``--child JOB``), and its timing and memory helpers.

Every mode runs in a fresh process so that memory peaks do not pollute each other; the parent (``cli``) starts
it with ``run_child`` and reads one JSON line back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .cases import Case, window_table
from .modes import ModeSpec, backend

RESULT_MARK = "BENCHMARK_RESULT "
MIB = 2**20
PACKAGE_DIR = Path(__file__).resolve().parent


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
            import resource  # Unix only

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
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss_reset = _reset_rss_peak()
        self.rss_base, _ = _rss_mib()

    def stop(self) -> dict[str, Any]:
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


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable, frames: torch.Tensor, case: Case, batch: int, device,
               feats_fn: Callable | None = None, save_ref: str | None = None) -> dict[str, Any]:
    """Time ``fn(frames[windows]) -> (B, 3, H, W)`` over the case's timed windows, ``batch`` per call, after a
    warm-up; peak memory of the timed calls; with ``feats_fn``, the convolution-heavy part alone; with
    ``save_ref``, the first timed output frame saved there (.npy) for the agreement figures."""
    out: dict[str, Any] = {"batch": batch}
    windows = window_table(case.length).to(device)
    first = case.warmup
    timed = list(range(first, first + case.frames))
    warm = list(range(0, case.warmup))

    def batches(indices):
        return [indices[i : i + batch] for i in range(0, len(indices), batch)]

    with torch.inference_mode():
        # Warm-up: one call on the CPU; on CUDA three (cuDNN autotuning, torch.compile, CUDA graphs).
        t0 = time.perf_counter()
        warm_groups = batches(warm) or [[first]]
        for k in range(1 if device.type == "cpu" else 3):
            y = fn(frames[windows[warm_groups[k % len(warm_groups)]]])
            del y
        sync(device)
        out["warmup_s"] = time.perf_counter() - t0

        groups = batches(timed)
        inputs = [windows[g] for g in groups]
        peak = MemoryPeak(device)
        peak.start()
        call_ms = []
        sync(device)
        t_start = time.perf_counter()
        for idx in inputs:
            t = time.perf_counter()
            y = fn(frames[idx])
            if device.type == "cpu":
                call_ms.append((time.perf_counter() - t) * 1e3)
            del y
        sync(device)
        total = time.perf_counter() - t_start
        out.update(peak.stop())
        out["ms_per_frame"] = total * 1e3 / len(timed)
        out["frames_timed"] = len(timed)
        out["calls"] = len(inputs)
        out["call_ms"] = call_ms

        if feats_fn is not None:
            conv_groups = inputs[: max(1, min(len(inputs), 4))]
            feats_fn(frames[conv_groups[0]])  # compile / autotune
            sync(device)
            t = time.perf_counter()
            n = 0
            for idx in conv_groups:
                feats_fn(frames[idx])
                n += idx.shape[0]
            sync(device)
            out["conv_ms_per_frame"] = (time.perf_counter() - t) * 1e3 / n

        if save_ref:  # output frame ``first`` (same call shape as timed: no recompiles)
            y = fn(frames[inputs[0]])
            arr = y[0].float().clamp(0.0, 1.0).cpu().numpy()
            np.save(save_ref, arr)
    return out


def child_main(job: dict) -> dict:
    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    warnings.simplefilter("ignore", RuntimeWarning)
    spec = ModeSpec(**job["spec"])
    case = Case(**job["case"])
    device = torch.device(job["device"])
    frames_np = np.load(job["frames"])
    t = time.perf_counter()
    res = backend(spec.kind).run(job, spec, case, device, frames_np)
    res["child_s"] = time.perf_counter() - t
    res["vssavsr_path"] = str(Path(sys.modules["vssavsr"].__file__).parent) if "vssavsr" in sys.modules else None
    if device.type == "cuda":
        res["gpu_name"] = torch.cuda.get_device_name(device)
    return res


def run_child(job: dict, timeout: float, env: dict) -> dict:
    """Run one measurement in a fresh process; its result, or ``{"error": ...}``."""
    cmd = [sys.executable, str(PACKAGE_DIR), "--child", json.dumps(job)]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(PACKAGE_DIR.parents[1]))
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
