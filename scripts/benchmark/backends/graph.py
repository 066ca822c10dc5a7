"""The exported-graph backends ``ort``, ``ov`` and ``trt``: the engine with the network exported to ONNX and run by
ONNX Runtime, OpenVINO or TensorRT (``vssavsr.engine.backends``). The export (first use, cached on disk) happens
before the timing."""

from __future__ import annotations

import argparse

import torch

from ..cases import Case
from ..child import time_calls
from ..modes import ModeSpec

GRAPH_BACKENDS = ("ort", "ov", "trt")


def modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    return {b: ModeSpec(b, kind="graph", conv_part=False, options={"backend": b}) for b in GRAPH_BACKENDS}


def graph_runner(backend: str, checkpoint, lr_size: tuple[int, int], out_size: tuple[int, int],
                 device: torch.device, batch: int = 1):
    """The engine's runner of ``backend`` for one case, called like ModelRunner.

    The graph comes from the cache (exported on first use, outside the timing); the backend's default precision
    applies (fp32 on the CPU, fp16 for TensorRT and ORT on CUDA)."""
    from vssavsr.engine import backends
    from vssavsr.model import load_checkpoint

    index = -1 if device.type == "cpu" else (device.index or 0)
    target = backends.resolve(backend, None if backend == "trt" and index < 0 else index, None)
    net, _ = load_checkpoint(str(checkpoint), map_location="cpu")
    scale = (out_size[0] / lr_size[0], out_size[1] / lr_size[1])
    return backends.open_runner(target, checkpoint, net, lr_size, out_size, scale, batch=batch)


def run(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    from vssavsr.engine import backends

    name = spec.options["backend"]
    try:
        runner = graph_runner(name, job["checkpoint"], case.lr_size, case.out_size, device)
    except backends.BackendUnavailable as e:
        return {"skipped": str(e)}
    frames = torch.from_numpy(frames_np).to(device)
    scale = (case.out_size[0] / case.height, case.out_size[1] / case.width)

    def fn(x):
        return runner(x, case.out_size, scale, (0.0, 0.0), None)

    out = time_calls(fn, frames, case, spec.batch or case.batch, device, None, job.get("save_ref"))
    out["engine_fp16"] = runner.fp16
    return out
