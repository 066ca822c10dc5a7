#!/usr/bin/env python3
"""Training-step A/B: channels-last (``train.channels_last``, the default) against the plain layout.

One process, the same weights and the same batch for both layouts, the two interleaved round by
round so that a neighbour taking a core slows both alike; the table reports each layout's fastest
step and the ratio plain / channels-last. A step is what ``training.learner.Learner`` does per iteration:
forward at the case's output size, Charbonnier loss, backward, gradient clipping, Adam.

    python scripts/bench_train.py                               # savsr-s, 1 thread, 3 cases
    python scripts/bench_train.py --threads 2 --rounds 5 --json out/train-step.json
    python scripts/bench_train.py --model savsr --batch 4        # the published network

Cases are LR patch x scale pairs (``--cases 48:1.5,48:3x2.5,48:4``; ``3x2.5`` is sx=3, sy=2.5).
On CUDA (``--device cuda``) each step is synchronised before it is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from training.learner import backward_pass  # noqa: E402
from training.state import build_network  # noqa: E402
from vssavsr.model.savsr import resolve_output  # noqa: E402

LAYOUTS = ("plain", "channels_last")


def parse_case(text: str) -> tuple[int, float, float]:
    """'48:3x2.5' -> (48, sx=3.0, sy=2.5); '48:4' -> (48, 4.0, 4.0)."""
    try:
        patch, scale = text.split(":")
        sx, _, sy = scale.partition("x")
        return int(patch), float(sx), float(sy or sx)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cases: expected PATCH:SX[xSY] such as 48:3x2.5, got {text!r}") from None


def make_setups(model: str, device: torch.device, seed: int) -> dict:
    torch.manual_seed(seed)
    plain = build_network({"name": model}).to(device).train()
    cl = build_network({"name": model}).to(device).train()
    cl.load_state_dict(plain.state_dict())
    cl.use_channels_last()
    return {
        name: (net, torch.optim.Adam(net.parameters(), lr=1e-4))
        for name, net in zip(LAYOUTS, (plain, cl))
    }


def train_step(net, opt, lr_clip, hr_target) -> None:
    out = net(lr_clip, out_size=tuple(hr_target.shape[-2:]))  # the centre frame, (B, 3, H, W)
    backward_pass(net, opt, out, hr_target, grad_clip=1.0)
    opt.step()


def time_case(setups, case, args, device) -> dict:
    patch, sx, sy = case
    gen = torch.Generator().manual_seed(args.seed)
    config = setups["plain"][0].config
    lr_clip = torch.rand(args.batch, config.num_frames, config.in_channels, patch, patch, generator=gen).to(device)
    (out_h, out_w), _ = resolve_output((patch, patch), None, (sy, sx))
    hr_target = torch.rand(args.batch, config.in_channels, out_h, out_w, generator=gen).to(device)
    for net, opt in setups.values():  # warm-up: allocator, mkldnn/cuDNN primitives
        train_step(net, opt, lr_clip, hr_target)
    seconds = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, (net, opt) in setups.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            train_step(net, opt, lr_clip, hr_target)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    best = {name: min(v) for name, v in seconds.items()}
    return {
        "case": f"{patch}:{sx:g}x{sy:g}",
        "lr_patch": patch, "scale": [sx, sy], "out_size": [out_h, out_w],
        "seconds": seconds, "best_s": best,
        "speedup_channels_last": best["plain"] / best["channels_last"],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="savsr-s", help="a named network config (default savsr-s)")
    ap.add_argument("--cases", default="48:1.5,48:3x2.5,48:4",
                    type=lambda s: [parse_case(c) for c in s.split(",")], help="PATCH:SX[xSY],...")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="timed steps per layout and case")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (training runs use 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.batch < 1:
        ap.error("--rounds and --batch must be >= 1")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    setups = make_setups(args.model, device, args.seed)
    results = []
    print(f"{'case':>12} {'out HxW':>9} {'plain s':>8} {'CL s':>8} {'plain/CL':>9}")
    for case in args.cases:
        r = time_case(setups, case, args, device)
        results.append(r)
        print(f"{r['case']:>12} {r['out_size'][0]:>4}x{r['out_size'][1]:<4} "
              f"{r['best_s']['plain']:8.2f} {r['best_s']['channels_last']:8.2f} "
              f"{r['speedup_channels_last']:9.2f}", flush=True)
    report = {
        "model": args.model, "device": str(device), "threads": args.threads,
        "batch": args.batch, "rounds": args.rounds,
        "torch": torch.__version__, "cases": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
