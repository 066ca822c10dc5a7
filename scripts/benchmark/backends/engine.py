"""The ``engine`` backend: the project's engine (``vssavsr.engine.runner.get_runner``) on preloaded tensors, the compute
configuration the plugin uses, without VapourSynth."""

from __future__ import annotations

import argparse

import torch

from vssavsr.engine import runner as engine

from ..cases import Case
from ..child import time_calls
from ..modes import ModeSpec


def modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    return {"engine": ModeSpec("engine", kind="engine", conv_part=False)}


def run(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    runner = engine.get_runner(job["checkpoint"], device, device.type == "cuda")
    frames = torch.from_numpy(frames_np).to(device)
    scale = (case.out_size[0] / case.height, case.out_size[1] / case.width)

    def fn(x):
        return runner(x, case.out_size, scale, (0.0, 0.0), case.tile)

    out = time_calls(fn, frames, case, spec.batch or case.batch, device, None, job.get("save_ref"))
    out["engine_fp16"] = runner.fp16
    return out
