"""Train SAVSR (``vssavsr.model``) with the reference recipe or a smaller one.

Examples::

    python -m training.train --config cpu-smoke --out runs/smoke                  # a minute on a CPU
    python -m training.train --config cpu-default --out runs/cpu                   # compact savsr-s, 1 thread
    python -m training.train --resume runs/cpu                                     # exact resume (last.pt)
    python -m training.train --config cpu-default --init vssavsr/weights/savsr-s.safetensors --out runs/cpu2
    python -m training.train --config quick-gpu --out runs/q --set optim.lr=1e-4 data.batch_size=24
    python -m training.train --config reference --out runs/ref                     # the published recipe
    torchrun --nproc_per_node=8 -m training.train --config reference --out runs/ref  # on 8 GPUs (training.distributed)

Charbonnier loss, Adam with cosine annealing with restarts, EMA weights, bf16 autocast on CUDA, gradient
clipping, optional ``torch.compile``; a training state every ``train.checkpoint_every`` iterations and on Ctrl-C
/ SIGTERM (model, optimizer, EMA, iteration; batches and the scale curriculum are a pure function of
(seed, iteration), so a resumed run sees the same batches as an uninterrupted one); ``log.csv`` (plot it with
``python -m training.plot_log``); at the end ``ema.safetensors`` in the plugin's checkpoint format.

This file is the command line. The loop is ``training.loop``, one step ``training.learner``, the training-state
file ``training.state``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from training.config import apply_overrides, load_config
from training.loop import train
from training.state import load_state

__all__ = ["main", "train"]


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", "-c", default=None, help="YAML file or shipped name: reference, quick-gpu, cpu-default, cpu-smoke")
    ap.add_argument("--out", "-o", default=None, help="run folder (default runs/<config name>)")
    ap.add_argument("--resume", default=None, help="training state (.pt) or run folder: exact resume")
    ap.add_argument("--init", default=None, help="start from these weights (plugin .safetensors checkpoint)")
    ap.add_argument("--set", "-s", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, e.g. optim.lr=1e-4 train.iterations=2000")
    ap.add_argument("--stop-at", type=int, default=None, help="save and stop after this many iterations (resume later)")
    ap.add_argument("--max-minutes", type=float, default=None, help="save and stop after this much wall time")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.resume:
        state = load_state(args.resume)
        cfg = state["config"]
        if args.config:
            print("--resume: using the configuration stored in the state (plus --set overrides)", file=sys.stderr)
        out = args.out or (Path(args.resume) if Path(args.resume).is_dir() else Path(args.resume).parent)
        del state
    else:
        cfg = load_config(args.config or "cpu-default")
        out = args.out or Path("runs") / cfg.get("name", "run")
        if (Path(out) / "last.pt").exists():
            raise SystemExit(f"{out} already holds a run: --resume {out} to continue it, or choose another --out")
    try:
        cfg = apply_overrides(cfg, args.set)
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"--set: {exc}") from None
    return train(cfg, out, resume=args.resume, init=args.init, stop_at=args.stop_at,
                 max_minutes=args.max_minutes, progress=not args.no_progress)


if __name__ == "__main__":
    main()
