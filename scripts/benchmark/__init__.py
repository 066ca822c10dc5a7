"""SAVSR speed and memory benchmark (issue 6).

One run measures, on the same synthetic input and the same weights, per case:

* ``raw``    (a) the model on preloaded tensors, fast path: folded BatchNorm, several windows per
             call, channels-last, and on CUDA fp16 weights + cuDNN autotuning (optionally
             ``torch.compile``);
* ``engine``     the project's engine (``vssavsr.engine.runner.get_runner``) on the same
             preloaded tensors: the compute configuration the plugin uses, without VapourSynth;
* ``plugin`` (b) the full ``core.savsr.Upscale`` path through VapourSynth (frame conversion,
             windowing, caches), frames pulled in order from an RGBS source clip;
* ``overhead``   the plugin path with the model replaced by a no-op (device copy + output write):
             the host-side cost of frame conversion, windowing and VapourSynth alone;
* ``naive``  (c) our network in reference mode (``net.set_reference_mode(True)``): per-pixel expert
             matrices, unfolded 5 x 5 filter, unfused BatchNorm, per-sample OSConv, fp32 (TF32
             off), one window per call.

Every mode runs in a fresh subprocess (so peaks do not pollute each other), in rounds with the
modes interleaved; the table reports the median over rounds. Figures per mode: frames/s,
ms/frame, peak memory (the process' peak RSS during the timed frames on the CPU;
``torch.cuda.max_memory_allocated`` on CUDA, plus reserved and whole-device figures), achieved
TFLOP/s (2 FLOPs per MAC of the model's MAC count, ``vssavsr.model.flops.count_macs``, for the
whole network and for its convolution-heavy part: alignment + fusion + reconstruction), and
per case the ratios raw/naive (frames/s), plugin/raw and plugin/engine (time per frame), and
the largest output difference raw vs naive and plugin vs engine (clamped to [0, 1]).

Usage::

    python scripts/benchmark --quick --json out/bench.json      # CPU, < 2 min
    python scripts/benchmark --device cuda --json out/bench-gpu.json   # the three GPU cases
    python scripts/benchmark --device cuda --sweep --json out/levers.json  # + one-lever variants

``--cases 320x180x4,960x540x2`` picks cases (WIDTHxHEIGHTxSCALE, optionally ``:bBATCH:nFRAMES:tTILE``;
a default size keeps its default batch and frames), ``--modes raw,plugin,naive`` the modes.
Results and the GPU commands to run are recorded in ``scripts/BENCHMARKS.md``. Weights: ``--checkpoint PATH``, else the shipped
``vssavsr/weights/<model>.safetensors``, else random weights (seeded; fine for timing, the JSON
says which). The input is a deterministic synthetic clip (moving multi-scale texture).

The package, one job per file:

- ``cases``: what is measured (sizes, scale, batch, frames), the synthetic input, the weights;
- ``modes``: how a mode runs (``ModeSpec``) and the registry of backends;
- ``backends/<kind>.py``: one file per kind of mode, each with ``modes(device, args)`` (the modes it offers)
  and ``run(job, spec, case, device, frames)`` (its measurement, in the child process): ``model`` (raw, naive and
  the lever variants), ``engine``, ``plugin`` (plugin and overhead), ``graph`` (``ort``, ``ov``, ``trt``: the
  exported graph through ONNX Runtime, OpenVINO, TensorRT). Another backend is one more file there;
  ``child.time_calls`` times any ``fn(frames) -> output``;
- ``child``: the child process (``--child``) and its memory and timing helpers;
- ``report``: medians, ratios, agreement, the targets and the printed table;
- ``cli``: the command line (``main``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
