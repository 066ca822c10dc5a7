"""Learning curve from a run's ``log.csv`` (and ``eval.csv`` if the run evaluated periodically).

    python -m training.plot_log runs/cpu                 # writes runs/cpu/curve.png
    python -m training.plot_log runs/cpu/log.csv -o curve.png --smooth 50

The plot itself is ``training.report.plot_log``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from training.report import plot_log


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
