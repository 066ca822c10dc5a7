"""Where the network runs: PyTorch (the default) or its exported ONNX graph through a runtime.

==========  ==============================  ============================================
backend     device_index                    package (``vssavsr[onnx]`` has ort's)
==========  ==============================  ============================================
``torch``   -1 CPU, k CUDA k (engine.runner)  in the base install
``ort``     -1/unset CPU, k CUDA k            onnxruntime (CUDA: onnxruntime-gpu)
``ov``      -1/unset CPU, k OpenVINO "GPU.k"  openvino
``trt``     unset/k CUDA k                    tensorrt
==========  ==============================  ============================================

A graph runner is a drop-in for :class:`vssavsr.engine.runner.ModelRunner` in
:class:`~vssavsr.engine.runner.UpscaleSession`: the same windows (clip ends, scene cuts), batching
and caches, only the model call differs. The graph is exported for the clip's size and scale on
first use and cached on disk (:mod:`.export`), keyed by checkpoint hash, size, scale and precision.
The runtimes are imported only here and in their one file each (ort.py, ov.py, trt.py).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from vssavsr.engine.runner import EngineError

from .export import GraphSpec, cache_dir, cached_graph, cached_graph_path, export_graph, file_digest

__all__ = [
    "BACKENDS", "BackendError", "BackendUnavailable", "Target", "resolve", "open_runner",
    "GraphRunner", "GraphSpec", "cache_dir", "cached_graph", "cached_graph_path", "export_graph", "file_digest",
]

BACKENDS = ("torch", "ort", "ov", "trt")
#: The module each backend imports, and the pip package that provides it.
RUNTIMES = {"ort": ("onnxruntime", "onnxruntime"), "ov": ("openvino", "openvino"), "trt": ("tensorrt", "tensorrt")}
EXPORT_MODULES = (("onnx", "onnx"), ("onnxscript", "onnxscript"))


class BackendError(EngineError):
    """A bad backend argument; ``arg`` is the argument to name (backend, device_index, fp16, tile)."""

    def __init__(self, arg: str, message: str):
        super().__init__(message)
        self.arg = arg


class BackendUnavailable(BackendError):
    """The backend's runtime (or the exporter) is not installed; the message says what to pip install."""

    def __init__(self, backend: str, packages: list[str], detail: str = ""):
        self.backend = backend
        self.packages = packages
        names = " ".join(packages)
        extra = ' (or pip install "vssavsr[onnx]")' if backend == "ort" and "onnxruntime-gpu" not in packages else ""
        super().__init__(
            "backend",
            f"backend={backend!r} needs {', '.join(packages)}, which {'is' if len(packages) == 1 else 'are'} not "
            f"installed{detail}: pip install {names}{extra}, or use backend='torch'",
        )


def _missing(modules) -> list[str]:
    missing = []
    for module, package in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return missing


@dataclass(frozen=True)
class Target:
    """A resolved backend: where it runs and in which precision.

    ``device`` is where the session keeps input frames (the CPU, or the CUDA device the runtime
    reads from); ``graph_fp16`` is the precision of the exported graph."""

    backend: str
    device: torch.device
    fp16: bool
    device_index: int
    graph_fp16: bool


def resolve(backend: str, device_index: int | None, fp16: bool | None) -> Target:
    """Check ``backend`` and turn ``device_index`` / ``fp16`` into a Target (BackendError names the argument)."""
    if backend not in BACKENDS or backend == "torch":
        raise BackendError("backend", f"{backend!r} is not a graph backend: use one of {', '.join(BACKENDS[1:])}")
    if device_index is not None and device_index < -1:
        raise BackendError("device_index", f"device_index={device_index} is not a device: use -1 for the CPU or 0..")
    cpu = torch.device("cpu")
    if backend == "trt":
        if device_index == -1:
            raise BackendError("device_index", "backend='trt' runs on a CUDA device: pass device_index=0.. or leave it unset")
        k = device_index or 0
        _check_cuda(k)
        use_fp16 = True if fp16 is None else bool(fp16)
        target = Target("trt", torch.device("cuda", k), use_fp16, k, use_fp16)
    elif backend == "ort":
        k = -1 if device_index is None else device_index
        on_cuda = k >= 0
        if on_cuda:
            _check_cuda(k)
        if fp16 and not on_cuda:
            raise BackendError(
                "fp16", "fp16=True with backend='ort' needs a CUDA device (device_index=0..); on the CPU the graph "
                "runs in float32 (leave fp16 unset)"
            )
        use_fp16 = on_cuda if fp16 is None else bool(fp16)
        target = Target("ort", torch.device("cuda", k) if on_cuda else cpu, use_fp16, k, use_fp16)
    else:  # ov: the fp32 graph, OpenVINO's inference precision set explicitly (its CPU default can be bf16)
        k = -1 if device_index is None else device_index
        target = Target("ov", cpu, bool(fp16), k, False)
    missing = _missing([RUNTIMES[backend]])
    if backend == "ort" and target.device.type == "cuda" and not missing:
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise BackendUnavailable("ort", ["onnxruntime-gpu"], " (this onnxruntime has no CUDA provider)")
    missing += _missing(EXPORT_MODULES)
    if missing:
        raise BackendUnavailable(backend, missing)
    return target


def _check_cuda(k: int) -> None:
    from vssavsr.engine.runner import cuda_available

    if not cuda_available():
        raise BackendError(
            "device_index", f"device_index={k} asks for CUDA device {k}, but CUDA is not available here; "
            "use backend='ort' or 'ov' on the CPU"
        )
    if k >= torch.cuda.device_count():
        raise BackendError("device_index", f"device_index={k}: unknown CUDA device, this machine has {torch.cuda.device_count()}")


class GraphRunner:
    """Runs one exported graph; called like ModelRunner by UpscaleSession (whole frames only).

    Subclasses implement ``run(x)``: one (batch, 3T, h, w) tensor on ``device`` -> (batch, 3, H, W)."""

    backend = "graph"

    def __init__(self, spec: GraphSpec, path: Path, target: Target):
        self.spec = spec
        self.path = Path(path)
        self.target = target
        self.device = target.device
        self.fp16 = target.fp16
        self.num_frames = spec.num_frames

    def run(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_call(self, frames, out_size, scale, offset, tile, ensemble=1) -> None:
        if tile is not None:
            raise EngineError(f"backend={self.backend!r} runs whole frames: tiles need backend='torch'")
        if ensemble != 1:
            raise EngineError(f"backend={self.backend!r} runs one graph of one orientation: ensemble needs backend='torch'")
        s = self.spec
        same = (
            tuple(frames.shape[1:]) == (s.num_frames, 3, *s.lr_size)
            and tuple(out_size) == s.out_size
            and all(abs(a - b) < 1e-9 for a, b in zip((*scale, *offset), (*s.scale, *s.offset)))
        )
        if not same:
            raise EngineError(
                f"internal error: the {self.backend} graph was exported for {s.lr_size} -> {s.out_size} at scale "
                f"{s.scale}, offset {s.offset}; called with {tuple(frames.shape)} -> {tuple(out_size)}, {scale}, {offset}"
            )

    def __call__(self, frames: torch.Tensor, out_size, scale, offset=(0.0, 0.0), tile=None, tile_pad=None,
                 ensemble=1) -> torch.Tensor:
        """(B, T, 3, h, w) in [0, 1] -> (B, 3, H, W) float32, in chunks of the graph's batch."""
        self._check_call(frames, out_size, scale, offset, tile, ensemble)
        b, t, c, h, w = frames.shape
        x = frames.reshape(b, t * c, h, w)
        gb = self.spec.batch
        outs = []
        for start in range(0, b, gb):
            chunk = x[start:start + gb]
            n = chunk.shape[0]
            if n < gb:  # the graph's batch is fixed: repeat the last window
                chunk = torch.cat([chunk, chunk[-1:].expand(gb - n, *chunk.shape[1:])])
            outs.append(self.run(chunk.contiguous())[:n].float())
        return torch.cat(outs)


def open_runner(
    target: Target,
    checkpoint: str | os.PathLike,
    net: torch.nn.Module,
    lr_size: tuple[int, int],
    out_size: tuple[int, int],
    scale: tuple[float, float],
    offset: tuple[float, float] = (0.0, 0.0),
    batch: int = 1,
    folder: str | os.PathLike | None = None,
    on_export: Callable[[Path], None] | None = None,
    threads: int | None = None,
) -> GraphRunner:
    """The runner of ``target`` for one clip geometry; exports (or reuses) the cached graph."""
    cfg = getattr(net, "config", None)
    spec = GraphSpec(
        (int(lr_size[0]), int(lr_size[1])), (int(out_size[0]), int(out_size[1])),
        (float(scale[0]), float(scale[1])), (float(offset[0]), float(offset[1])),
        int(batch), target.graph_fp16, int(getattr(cfg, "num_frames", 7)),
    )
    path = cached_graph(checkpoint, net, spec, folder, on_export)
    threads = threads or torch.get_num_threads()
    if target.backend == "ort":
        from .ort import OrtRunner

        return OrtRunner(spec, path, target, threads)
    if target.backend == "ov":
        from .ov import OvRunner

        return OvRunner(spec, path, target, threads)
    from .trt import TrtRunner

    return TrtRunner(spec, path, target, folder if folder is not None else cache_dir(), on_export)
