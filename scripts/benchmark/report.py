"""Reporting: the median over rounds of each mode, the ratios and output agreement between modes, the issue's GPU
targets, and the printed table."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

MIB = 2**20
#: A "24 GB" card: what the whole device may use (CUDA context included) for the case to fit.
FIT_BUDGET_MIB = 23.5 * 1024

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
    ensembles = [k for k in r if k.startswith("ens") and r[k] is not None]
    if ensembles:
        print("ensemble time / engine time: " + "   ".join(f"{k.split('_')[0][3:]} copies {r[k]:.2f}x" for k in ensembles))
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


def ratios(agg: dict, modes: dict) -> dict[str, float | None]:
    """Time ratios between the modes of one case (and, on the lever variants, ``time_over_raw``)."""
    ms = {k: v.get("ms_per_frame") for k, v in agg.items()}

    def over(a, b):
        return ms[a] / ms[b] if ms.get(a) and ms.get(b) else None

    out = {
        "fast_over_naive": over("naive", "raw"),  # raw fps / naive fps
        "plugin_over_raw": over("plugin", "raw"),
        "plugin_over_engine": over("plugin", "engine"),  # VapourSynth + frame conversion only
        "engine_over_raw": over("engine", "raw"),
    }
    if over("overhead", "raw") is not None:
        out["overhead_over_raw"] = over("overhead", "raw")  # 0.2 = the 20 % budget, if not overlapped
    src_ms = agg.get("plugin", {}).get("source_ms_per_frame")
    if out["plugin_over_raw"] is not None and src_ms is not None:
        # the synthetic source's own cost (a Python ModifyFrame; a decoder would have one too)
        out["plugin_over_raw_excl_source"] = (ms["plugin"] - src_ms) / ms["raw"]
    for b in ("ort", "ov", "trt"):
        if over("engine", b) is not None:
            out[f"engine_over_{b}"] = over("engine", b)  # > 1: the backend is faster than PyTorch
    for label in modes:
        if label.startswith("engine-ens") and over(label, "engine") is not None:
            out[f"{label.removeprefix('engine-')}_over_engine"] = over(label, "engine")  # ideal: the copy count
        if label.startswith("lever:") and over(label, "raw") is not None:
            agg[label]["time_over_raw"] = over(label, "raw")  # > 1: this variant is slower than raw
    return out


def agreement(work: Path, case_name: str) -> dict[str, float | None]:
    """Largest output difference of one frame between pairs of modes (clamped to [0, 1]), also in 1/255."""
    out: dict[str, Any] = {}
    for a, b in (("raw", "naive"), ("plugin", "engine"), ("plugin", "naive"), ("engine", "naive"),
                 ("ort", "engine"), ("ov", "engine"), ("trt", "engine")):
        d = compare_refs(work / f"out-{case_name}-{a}.npy", work / f"out-{case_name}-{b}.npy")
        out[f"{a}_vs_{b}_max_abs"] = d
        out[f"{a}_vs_{b}_255"] = None if d is None else d * 255
    return out
