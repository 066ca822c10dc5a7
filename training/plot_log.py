"""Learning curve from a run's ``log.csv`` (and ``eval.csv`` if the run evaluated periodically).

    python -m training.plot_log runs/cpu                 # writes runs/cpu/curve.png
    python -m training.plot_log runs/cpu/log.csv -o curve.png --smooth 50
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n), dpi=110, sharex=True)
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
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m training.plot_log", description="plot a run's learning curve")
    ap.add_argument("log", help="log.csv or run folder")
    ap.add_argument("--out", "-o", default=None, help="PNG (default: curve.png beside the log)")
    ap.add_argument("--smooth", type=int, default=20, help="moving-average window, in log rows")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    path = plot_log(args.log, args.out, args.smooth, args.title)
    print(f"wrote {path}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
