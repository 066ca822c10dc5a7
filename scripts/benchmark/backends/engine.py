"""The ``engine`` backend: the project's engine (``vssavsr.engine.runner.get_runner``) on preloaded tensors, the compute
configuration the plugin uses, without VapourSynth; ``engine-ens2/4/8`` add the filter's ``ensemble`` argument."""

from __future__ import annotations

import argparse

import torch

from vssavsr.engine import runner as engine
from vssavsr.engine.ensemble import SIZES as ENSEMBLE_COPIES

from ..cases import Case
from ..child import time_calls
from ..modes import ModeSpec


def modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    out = {"engine": ModeSpec("engine", kind="engine", conv_part=False)}
    for copies in ENSEMBLE_COPIES[1:]:
        label = f"engine-ens{copies}"
        out[label] = ModeSpec(label, kind="engine", conv_part=False, options={"ensemble": copies})
    return out


def run(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    runner = engine.get_runner(job["checkpoint"], device, device.type == "cuda")
    frames = torch.from_numpy(frames_np).to(device)
    scale = (case.out_size[0] / case.height, case.out_size[1] / case.width)

    ensemble = spec.options.get("ensemble", 1)

    def fn(x):
        return runner(x, case.out_size, scale, (0.0, 0.0), case.tile, ensemble=ensemble)

    out = time_calls(fn, frames, case, spec.batch or case.batch, device, None, job.get("save_ref"))
    out["engine_fp16"] = runner.fp16
    return out
