#!/usr/bin/env python3
"""Which route runs the exported graph inside VapourSynth: a one-off measurement (issue 22).

Routes, on the same real frames (the bundled sample, 320x136), the same weights, one process:

* ``torch``        core.savsr.Upscale(..., backend="torch") on the CPU: the reference;
* ``ort``, ``ov``  core.savsr.Upscale(..., backend="ort" / "ov"): our engine (windows, scene cuts,
                   caches) calling onnxruntime's / OpenVINO's Python API;
* ``mlrt``         vs-mlrt's core.ort.Model on the same graph, fed 7 window clips built with
                   std.Splice (clip-end reflection only: per-frame scene-cut windows would need a
                   Python frame callback per window clip);
* ``mlrt-pad``     at a non-integer scale vs-mlrt refuses the graph, so the graph pads its output
                   with zeros to the next whole multiple of the input and std.Crop cuts it back;
* vs-mlrt with ``flexible_output_prop`` at the non-integer scale: does it lift the refusal?

Each route's frames are timed in rounds, the routes interleaved, each round on new frames (no
cached outputs); ratios are per-round medians. Needs vapoursynth-mlrt-ort (pip) for the mlrt rows.

    python scripts/bench_backend_routes.py --threads 2 --rounds 3 --json routes.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def window_clips(clip, radius: int = 3):
    """The 7 window clips of vs-mlrt: clip k's frame n is frame reflect(n + k - 3) (clip ends only)."""
    import vapoursynth as vs

    from vssavsr.engine.windows import reflect_index

    n = clip.num_frames
    return [
        vs.core.std.Splice([clip[reflect_index(i + k, 0, n - 1)] for i in range(n)]) if k else clip
        for k in range(-radius, radius + 1)
    ]


def export_padded(net, lr, out, scale, path: Path, padded: tuple[int, int]) -> Path:
    """The graph of ``GraphSpec(lr, out, scale)`` with its output zero-padded to ``padded`` (H, W)."""
    import torch
    import torch.nn.functional as F

    from vssavsr.engine.backends.export import GraphSpec, graph_module

    spec = GraphSpec(lr, out, scale)
    inner = graph_module(net, spec)

    class Padded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            return F.pad(y, (0, padded[1] - out[1], 0, padded[0] - out[0]))

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(Padded().eval(), (torch.rand(spec.input_shape),), dynamo=True, optimize=True,
                          external_data=False, input_names=["frames"], output_names=["hr"]).save(str(path))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--frames", type=int, default=4, help="timed frames per route and round (a multiple of batch 4)")
    ap.add_argument("--scale", type=float, default=2.5, help="the non-integer scale")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import vapoursynth as vs

    import vssavsr
    from vssavsr.engine import runner as engine
    from vssavsr.engine.backends import cached_graph_path, GraphSpec
    from vssavsr.model import load_checkpoint
    from vssavsr.plugin import native
    from vssavsr.plugin.arrays import frame_array

    torch.set_num_threads(args.threads)
    core = vs.core
    core.num_threads = args.threads
    native.ensure_namespace(core)
    tmp = Path(tempfile.gettempdir()) / "vssavsr-routes"  # graphs kept between runs (exports take a minute)
    tmp.mkdir(exist_ok=True)
    os.environ.setdefault("VSSAVSR_CACHE_DIR", str(tmp / "cache"))
    ckpt = engine.shipped_checkpoint("savsr-s")
    net, _ = load_checkpoint(str(ckpt))

    src = core.bs.VideoSource(vssavsr.sample_clip_path(), cachemode=0)
    src = core.resize.Bicubic(src, format=vs.RGBS, matrix_in_s="709")
    h, w = src.height, src.width
    need = 1 + args.rounds * args.frames + 8
    src = src[:need]
    have_mlrt = hasattr(core, "ort")
    try:
        import openvino  # noqa: F401

        have_ov = True
    except ImportError:
        have_ov = False

    routes = {}
    notes = {}
    for s in (2.0, args.scale):
        H, W = round(h * s), round(w * s)
        tag = f"x{s:g}"
        routes[f"torch {tag}"] = vssavsr.upscale(src, sx=s, model="savsr-s", device_index=-1)
        routes[f"ort {tag}"] = vssavsr.upscale(src, sx=s, model="savsr-s", backend="ort")  # exports into the cache
        if have_ov:
            routes[f"ov {tag}"] = vssavsr.upscale(src, sx=s, model="savsr-s", backend="ov")
        if not have_mlrt:
            continue
        graph = cached_graph_path(ckpt, GraphSpec((h, w), (H, W), (H / h, W / w)))
        wins = window_clips(src)
        try:
            node = core.ort.Model(wins, network_path=str(graph), provider="CPU", num_streams=1)
            node.get_frame(0)
            routes[f"mlrt {tag}"] = node
        except vs.Error as exc:
            notes[f"mlrt {tag}"] = str(exc)
            try:
                node = core.ort.Model(wins, network_path=str(graph), provider="CPU", flexible_output_prop="planes")
                node.get_frame(0)
                notes[f"mlrt {tag} flexible_output_prop"] = "accepted"
            except vs.Error as exc2:
                notes[f"mlrt {tag} flexible_output_prop"] = str(exc2)
            padded = (math.ceil(H / h) * h, math.ceil(W / w) * w)
            pgraph = tmp / f"padded-{w}x{h}-{tag}.onnx"
            if not pgraph.is_file():
                export_padded(net, (h, w), (H, W), (H / h, W / w), pgraph, padded)
            node = core.ort.Model(wins, network_path=str(pgraph), provider="CPU", num_streams=1)
            routes[f"mlrt-pad {tag}"] = core.std.CropAbs(node, W, H)
            notes[f"mlrt-pad {tag}"] = f"graph output {padded[1]}x{padded[0]}, cropped to {W}x{H}"

    load_before = os.getloadavg()
    # warm-up (sessions, first calls), then the rounds
    for node in routes.values():
        node.get_frame(0)
    times = {name: [] for name in routes}
    outputs = {name: {} for name in routes}
    for r in range(args.rounds):
        first = 1 + r * args.frames
        for name, node in routes.items():
            t = time.perf_counter()
            for n in range(first, first + args.frames):
                outputs[name][n] = frame_array(node.get_frame(n))
            times[name].append((time.perf_counter() - t) / args.frames)
    result = {"threads": args.threads, "rounds": args.rounds, "frames_per_round": args.frames,
              "input": f"{w}x{h}", "load_before": load_before, "notes": notes, "routes": {}}
    for name in routes:
        tag = name.split()[-1]
        ref = outputs[f"torch {tag}"]
        diff = max(float(np.abs(outputs[name][n] - ref[n]).max()) for n in ref)
        per_round = [times[f"torch {tag}"][i] / times[name][i] for i in range(args.rounds)]
        result["routes"][name] = {
            "s_per_frame": statistics.median(times[name]),
            "s_per_frame_rounds": times[name],
            "speed_vs_torch": statistics.median(per_round),
            "max_abs_diff_vs_torch": diff,
        }
    result["load_after"] = os.getloadavg()
    print(f"{'route':<16} {'s/frame':>8} {'vs torch':>9} {'max|diff|':>10}")
    for name, row in result["routes"].items():
        print(f"{name:<16} {row['s_per_frame']:8.2f} {row['speed_vs_torch']:8.2f}x {row['max_abs_diff_vs_torch']:10.2e}")
    for k, v in notes.items():
        print(f"note: {k}: {v}")
    print(f"load average before/after: {result['load_before']} / {result['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
