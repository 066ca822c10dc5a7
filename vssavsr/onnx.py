"""python -m vssavsr.onnx export: write the network as an ONNX graph for one frame size and scale.

    python -m vssavsr.onnx export --model savsr-s --width 960 --height 540 --sx 2 -o savsr-s-960x540-x2.onnx

The graph is static (batch, size, scale); its input ``frames`` is (batch, 21, h, w), the 7 window
frames as RGB channel triples in order (centre = 4th), its output ``hr`` the upscaled centre frame
(batch, 3, H, W) in [0, 1]. The output size is the one ``core.savsr.Upscale(clip, sx, sy)`` gives
an RGB clip of that size (rounded to whole pixels), and the graph uses the same exact scale
(H / h, W / w), so both agree. Global pooling is inside the graph: run it on whole frames, not tiles.
``core.savsr.Upscale(..., backend="ort"|"ov"|"trt")`` exports and caches these graphs itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path


def _output_size(width: int, height: int, sx: float, sy: float) -> tuple[int, int]:
    return max(1, int(math.floor(height * sy + 0.5))), max(1, int(math.floor(width * sx + 0.5)))


def _checkpoint(model: str) -> Path:
    from vssavsr.engine import runner

    if model in runner.SHIPPED_MODELS:
        try:
            return runner.shipped_checkpoint(model)
        except runner.EngineError as exc:
            raise SystemExit(f"--model: {exc}") from None
    path = Path(model).expanduser()
    if not path.is_file():
        raise SystemExit(f"--model: {model!r} is neither a shipped model ({', '.join(runner.SHIPPED_MODELS)}) nor a file")
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vssavsr.onnx", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="export the network for one input size and scale")
    e.add_argument("--model", default="savsr-s", help="shipped model name (savsr-s, savsr) or checkpoint path")
    e.add_argument("--width", type=int, required=True, help="input (LR) frame width")
    e.add_argument("--height", type=int, required=True, help="input (LR) frame height")
    e.add_argument("--sx", type=float, required=True, help="horizontal scale")
    e.add_argument("--sy", type=float, default=None, help="vertical scale (default: sx)")
    e.add_argument("--fp16", action="store_true", help="half-precision graph (grid sampling stays fp32)")
    e.add_argument("--batch", type=int, default=1, help="windows per call, fixed in the graph (default 1)")
    e.add_argument("--check", action="store_true", help="run the graph with onnxruntime and compare with PyTorch")
    e.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    return p


def export_command(args: argparse.Namespace) -> int:
    from vssavsr.engine.backends.export import GraphSpec, export_graph
    from vssavsr.model import load_checkpoint
    from vssavsr.model.savsr import MAX_SCALE

    sy = args.sx if args.sy is None else args.sy
    for name, v in (("--sx", args.sx), ("--sy", sy)):
        if not (0 < v <= MAX_SCALE):
            raise SystemExit(f"{name}: {v:g} is not a scale factor: it must be in (0, {MAX_SCALE:g}]")
    for name, v in (("--width", args.width), ("--height", args.height), ("--batch", args.batch)):
        if v < 1:
            raise SystemExit(f"{name}: {v} must be >= 1")
    ckpt = _checkpoint(args.model)
    net, _ = load_checkpoint(str(ckpt), map_location="cpu")
    h, w = args.height, args.width
    out = _output_size(w, h, args.sx, sy)
    spec = GraphSpec((h, w), out, (out[0] / h, out[1] / w), batch=args.batch, fp16=args.fp16,
                     num_frames=net.config.num_frames)
    print(f"exporting {ckpt.name}: {w}x{h} -> {out[1]}x{out[0]} ({spec.precision}, batch {args.batch}) ...",
          file=sys.stderr)
    t0 = time.perf_counter()
    path = export_graph(net, spec, args.output)
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s: input 'frames' {spec.input_shape}, "
          f"output 'hr' {spec.output_shape}", file=sys.stderr)
    if not (float(out[0]) / h).is_integer() or not (float(out[1]) / w).is_integer():
        print("note: vs-mlrt's Model filters need output sizes that are whole multiples of the input; "
              "use core.savsr.Upscale(..., backend=...) for this scale", file=sys.stderr)
    if args.check:
        print(f"max |onnxruntime - PyTorch| on random frames: {check_graph(net, spec, path):.3g}", file=sys.stderr)
    return 0


def check_graph(net, spec, path, seed: int = 0) -> float:
    """Max abs difference between the graph (onnxruntime, CPU) and the PyTorch network on random frames."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from vssavsr.engine.backends.export import INPUT_NAME, graph_module

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(spec.input_shape, generator=gen)
    ref_spec = dataclasses.replace(spec, fp16=False)
    with torch.no_grad():
        ref = graph_module(net, ref_spec)(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = x.half().numpy() if spec.fp16 else x.numpy()
    got = session.run(None, {INPUT_NAME: feed})[0].astype(np.float32)
    return float(np.abs(got - ref).max())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "export":
        return export_command(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
