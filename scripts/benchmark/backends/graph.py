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


def run(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    from vssavsr.engine import backends

    name = spec.options["backend"]
    try:
        runner = backends.benchmark_runner(name, job["checkpoint"], case.lr_size, case.out_size, device)
    except backends.BackendUnavailable as e:
        return {"skipped": str(e)}
    frames = torch.from_numpy(frames_np).to(device)
    scale = (case.out_size[0] / case.height, case.out_size[1] / case.width)

    def fn(x):
        return runner(x, case.out_size, scale, (0.0, 0.0), None)

    out = time_calls(fn, frames, case, spec.batch or case.batch, device, None, job.get("save_ref"))
    out["engine_fp16"] = runner.fp16
    return out
