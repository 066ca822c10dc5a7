"""Write the plugin's checkpoint format from a training state: EMA weights, the network configuration, and the
training recipe and evaluation summary as metadata. Load it with ``core.savsr.Upscale(clip, ..., checkpoint=path)``.

Examples::

    python -m training.export runs/cpu/last.pt -o savsr-s-mine.safetensors
    python -m training.export runs/cpu -o mine.safetensors --eval runs/cpu/eval/results.json --dtype fp16
    python -m training.export runs/gpu/ema-fp32.safetensors -o mine.safetensors --eval … --real-eval … --dtype fp16

The last form starts from an exported EMA (what a GPU run brings back without its training state): its recipe and
training summary are kept, the evaluation summaries are replaced.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

import vssavsr
from training.config import dump
from training.report import summary
from training.state import load_state, network_of
from vssavsr.model import load_checkpoint, save_checkpoint


def export_state(
    state_path: str | Path,
    out: str | Path,
    weights: str = "ema",
    evaluation: dict | str | Path | None = None,
    dtype: str | None = None,
    notes: str | None = None,
    validation: dict | str | Path | None = None,
) -> Path:
    """Save a training state's ``weights`` ("ema" or "raw") with ``vssavsr.model.save_checkpoint``; or re-save an
    exported checkpoint (``state_path`` ending in .safetensors) with new evaluation summaries and ``dtype``.

    ``evaluation``: a results.json written by ``training.evaluate`` (or its dict); its summary goes into the
    metadata. ``validation``: the same for the real-footage validation (``training.evaluate --real``), which
    ``training.ship`` compares candidates against. ``dtype``: "fp16", "bf16" or None (fp32)."""
    if Path(state_path).suffix == ".safetensors":
        net, meta = _from_exported(state_path, weights)
    else:
        net, meta = _from_state(state_path, weights)
    for key, results in (("evaluation", evaluation), ("validation", validation)):
        if results is None:
            continue
        if not isinstance(results, dict):
            results = json.loads(Path(results).read_text())
        meta[key] = summary(results) if "mean" in results and "per_sequence" in results else results
    if notes:
        meta["notes"] = notes
    torch_dtype = {None: None, "fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(net, str(out), metadata=meta, dtype=torch_dtype)
    return out


def _from_state(state_path: str | Path, weights: str) -> tuple[torch.nn.Module, dict]:
    state = load_state(state_path)
    cfg = state["config"]
    meta = {
        "recipe": dump(cfg),
        "training": {
            "config_name": cfg.get("name"),
            "iterations": int(state["iteration"]),
            "wall_time_s": round(float(state.get("elapsed_s", 0.0)), 1),
            "weights": weights,
            "ema_decay": (cfg.get("ema") or {}).get("decay"),
            "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
            "vssavsr_version": vssavsr.__version__,
            "torch": torch.__version__,
        },
    }
    return network_of(state, weights), meta


def _from_exported(path: str | Path, weights: str) -> tuple[torch.nn.Module, dict]:
    net, meta = load_checkpoint(path)
    stored = (meta.get("training") or {}).get("weights", "ema")
    if weights != stored:
        raise ValueError(f"weights={weights!r}: {path} holds only the {stored!r} weights; export those, or export "
                         "the raw weights from the run's training state (.pt)")
    meta = {k: v for k, v in meta.items() if k not in ("evaluation", "validation")}
    meta.setdefault("training", {})["exported"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return net, meta


def main(argv: Sequence[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("state", help="training state (.pt), run folder (uses its last.pt), or an exported EMA (.safetensors)")
    ap.add_argument("--out", "-o", required=True, help="output .safetensors")
    ap.add_argument("--weights", choices=["ema", "raw"], default="ema")
    ap.add_argument("--eval", default=None, help="Vid4 results.json from python -m training.evaluate, stored as metadata")
    ap.add_argument("--real-eval", default=None, help="real-footage results.json (training.evaluate --real), stored as metadata")
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None, help="storage precision (default fp32)")
    ap.add_argument("--notes", default=None, help="free text stored in the metadata")
    args = ap.parse_args(argv)
    path = export_state(args.state, args.out, args.weights, args.eval, args.dtype, args.notes, args.real_eval)
    print(f"wrote {path}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
