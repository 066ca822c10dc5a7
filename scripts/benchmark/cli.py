"""The command line: which cases and modes, rounds of child processes, the table and the JSON."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vssavsr.model import NAMED_CONFIGS
from vssavsr.model.flops import count_macs

from .backends.model import estimate_peak_bytes
from .cases import CPU_CASES, GPU_CASES, QUICK_CASE, Case, load_net_config, parse_case, resolve_weights, synth_frames
from .child import RESULT_MARK, child_main, run_child
from .modes import ModeSpec, default_modes, lever_variants
from .report import MIB, agreement, aggregate, bf16_peak, evaluate_targets, print_case_table, ratios


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python scripts/benchmark", description=sys.modules[__package__].__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the small CPU case (< 2 min on 2 cores)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--model", choices=("savsr", "savsr-s"), default=None,
                    help="network (default: savsr on CUDA; the quick/CPU case uses savsr-s)")
    ap.add_argument("--checkpoint", default=None, help="weights file (default: shipped, else random)")
    ap.add_argument("--cases", default=None, help="comma-separated WxHxS[:bB][:nN][:tTILE] (default: per device)")
    ap.add_argument("--modes", default="raw,engine,plugin,overhead,naive",
                    help="subset of raw,engine,plugin,overhead,naive,ort,ov,trt (overhead: the plugin path with a no-op "
                         "model; ort/ov/trt: the engine with the network exported to ONNX and run by that runtime)")
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
    return ap


def pick_device(args) -> str:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not args.quick else "cpu"
    if args.quick:
        device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmark: --device cuda but CUDA is not available")
    return device


def pick_cases(args, device: str) -> list[Case]:
    if args.cases:
        # A named size inherits its default batch/frames (GPU list on CUDA, CPU list on the CPU).
        known = {(c.width, c.height, c.scale): c for c in (GPU_CASES if device == "cuda" else CPU_CASES)}
        cases = []
        for spec in (s for s in args.cases.split(",") if s.strip()):
            c = parse_case(spec)
            base = known.get((c.width, c.height, c.scale))
            cases.append(parse_case(spec, {"batch": base.batch, "frames": base.frames, "model": base.model}) if base else c)
    elif args.quick:
        cases = [QUICK_CASE]
    else:
        cases = list(GPU_CASES if device == "cuda" else CPU_CASES)
    return [
        replace(c, model=args.model or c.model or ("savsr" if device == "cuda" else "savsr-s"),
                frames=args.frames or c.frames, batch=args.batch or c.batch)
        for c in cases
    ]


def pick_modes(args, device: str) -> dict[str, ModeSpec]:
    all_modes = default_modes(device, args)
    wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in wanted:
        if m not in all_modes:
            raise SystemExit(f"benchmark: unknown mode {m!r} (use {', '.join(all_modes)})")
    modes = {k: all_modes[k] for k in wanted}
    if args.sweep:
        for v in lever_variants(device, all_modes["raw"]):
            modes[v.label] = v
    return modes


def run_meta(args, argv, device: str, threads: int | None, rounds: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python scripts/benchmark", *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))]),
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
    return meta


def measure_case(case: Case, modes: dict[str, ModeSpec], args, device: str, threads: int | None, rounds: int,
                 timeout: float, env: dict, work: Path, meta: dict) -> dict:
    """Every mode of one case, ``rounds`` times interleaved, each in its own process; the case's result."""
    ckpt, weights = resolve_weights(case.model, args.checkpoint, work)
    config, _ = load_net_config(ckpt)
    if args.checkpoint:  # the network is the checkpoint's, whatever the case's default
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
    base_job = {"checkpoint": ckpt, "device": "cuda:0" if device == "cuda" else "cpu", "frames": str(frames_path),
                "threads": threads, "case": asdict(case)}
    runs: dict[str, list[dict]] = {k: [] for k in modes}
    labels = list(modes)
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[: r % len(labels)]:  # rotate: interleaved, fair
            if r > 0 and runs[label] and "skipped" in runs[label][0]:
                continue
            job = dict(base_job, spec=asdict(modes[label]))
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
    gpu_name = next((m.get("gpu_name") for m in agg.values() if m.get("gpu_name")), meta.get("gpu_name"))
    result = {
        "case": case.name, "model": case.model, "weights": weights, "lr_size": list(case.lr_size),
        "out_size": list(case.out_size), "scale": case.scale, "batch": case.batch, "frames": case.frames,
        "tile": case.tile, "macs_per_frame": macs["total"], "conv_macs_per_frame": conv_macs,
        "macs_by_module": macs["by_module"], "est_peak_mib": None if est is None else est / MIB, "modes": agg,
        "configs": {k: v.describe() for k, v in modes.items()}, "ratios": ratios(agg, modes),
        "agreement": agreement(work, case.name),
    }
    result["targets"] = evaluate_targets(result, device, bf16_peak(gpu_name, args.peak_tflops))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.child is not None:
        print(RESULT_MARK + json.dumps(child_main(json.loads(args.child))), flush=True)
        return 0
    device = pick_device(args)
    threads = args.threads or (1 if device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    cases = pick_cases(args, device)
    modes = pick_modes(args, device)
    rounds = args.rounds or (3 if device == "cpu" and not args.quick else 2)
    timeout = args.timeout or (110.0 if args.quick else 900.0)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"

    t_all = time.perf_counter()
    meta = run_meta(args, argv, device, threads, rounds)
    print(f"SAVSR benchmark on {device}" + (f" ({meta['gpu_name']})" if device == "cuda" else f" ({os.cpu_count()} cores, {threads} torch thread(s))")
          + f", {rounds} round(s) per mode, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vssavsr-bench-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for case in cases:
            results.append(measure_case(case, modes, args, device, threads, rounds, timeout, env, work, meta))
            print_case_table(results[-1])
    meta["total_s"] = time.perf_counter() - t_all
    print(f"\ntotal {meta['total_s']:.0f} s")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "cases": results}, indent=2) + "\n")
        print(f"wrote {path}")
    return 0
