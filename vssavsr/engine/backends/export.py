"""ONNX export of SAVSR at one frame size and scale, and the on-disk cache of exported graphs.

The graph (``GraphSpec``) is static: batch, LR size, output size, scale and offset are fixed when
it is exported, because the upsampler's HR grid is built on the host for one scale and the
OSConv grouped convolution has the batch in its group count. Its one input ``frames`` is
(batch, 3 * T, h, w): the T window frames as consecutive RGB channel triples, the layout vs-mlrt
gives to T RGBS clips, clamped to [0, 1] inside the graph as the engine does. Its one output ``hr``
is the centre frame (batch, 3, H, W), clamped to [0, 1].

Export goes through ``torch.onnx.export(dynamo=True)`` on the inference form of the network
(``SAVSR.for_inference``: BatchNorm folded). The float64 grid arithmetic runs at trace time and
the exporter's optimiser folds it into float32 constants, so no float64 op reaches the runtimes
(TensorRT has none); grids larger than the optimiser's folding limit stay as a few cheap
Expand/Concat ops. The fp16 graph is the network cast to half, with the grid sampling kept in
fp32 as in the PyTorch path (``sample_lr``): a strongly typed graph, which TensorRT 10.12+ and
11 build as it is.

Global pooling (the OSConv routing and channel attention) is inside the graph: a graph sees the
whole frame it was exported for, so tiles through it are not the same as the whole frame.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vssavsr.model.official import file_sha256

#: Bump when the exported graph changes for the same checkpoint and spec (wrapper, exporter options).
EXPORT_VERSION = 2
INPUT_NAME = "frames"
OUTPUT_NAME = "hr"
#: Environment variable that overrides the cache folder.
CACHE_ENV = "VSSAVSR_CACHE_DIR"


@dataclass(frozen=True)
class GraphSpec:
    """What one exported graph is fixed to: (h, w) -> (H, W) at scale (sy, sx), offset (oy, ox)."""

    lr_size: tuple[int, int]
    out_size: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)
    batch: int = 1
    fp16: bool = False
    num_frames: int = 7

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3 * self.num_frames, *self.lr_size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, *self.out_size)

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"

    def file_name(self, checkpoint_digest: str) -> str:
        """Readable and unique: checkpoint hash, sizes, precision, and a hash of the exact floats."""
        exact = repr((EXPORT_VERSION, self.scale, self.offset, self.num_frames, _torch_version()))
        tag = hashlib.sha256(exact.encode()).hexdigest()[:8]
        (h, w), (oh, ow) = self.lr_size, self.out_size
        sy, sx = self.scale
        return (
            f"savsr-{checkpoint_digest[:16]}-{w}x{h}-to-{ow}x{oh}-s{sx:.4g}x{sy:.4g}-b{self.batch}"
            f"-{self.precision}-{tag}.onnx"
        )


def _torch_version() -> str:
    return torch.__version__.split("+")[0]


class WindowGraph(nn.Module):
    """The exported function: (B, 3T, h, w) channel-stacked window -> clamped centre frame (B, 3, H, W)."""

    def __init__(self, net: nn.Module, spec: GraphSpec):
        super().__init__()
        self.net = net
        self.spec = spec

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, _, h, w = frames.shape
        # Clamped as the engine clamps its inputs: RGB converted from YUV overshoots [0, 1], and a
        # graph fed by vs-mlrt would otherwise see other values than core.savsr.Upscale does.
        window = frames.clamp(0.0, 1.0).reshape(b, self.spec.num_frames, 3, h, w)
        out = self.net(window, out_size=self.spec.out_size, scale=self.spec.scale, offset=self.spec.offset)
        return out.clamp(0.0, 1.0)


def graph_module(net: nn.Module, spec: GraphSpec) -> WindowGraph:
    """The module that is exported for ``spec``: a copy of ``net`` in inference form (fp16 when asked)."""
    net = copy.deepcopy(net).cpu().eval()
    if hasattr(net, "fuse_for_inference"):
        net.fuse_for_inference()
    net.requires_grad_(False)
    if spec.fp16:
        net = net.half()
    return WindowGraph(net, spec).eval()


def export_graph(net: nn.Module, spec: GraphSpec, path: str | os.PathLike) -> Path:
    """Export ``net`` for ``spec`` to the ONNX file ``path`` (written atomically); returns the path."""
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing): "
            'pip install onnx onnxscript (or pip install "vssavsr[onnx]")'
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = graph_module(net, spec)
    dtype = torch.float16 if spec.fp16 else torch.float32
    example = torch.rand(spec.input_shape, dtype=dtype)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    # The exporter reports progress on stdout, which is the video pipe under vspipe: send it to stderr.
    chatter = io.StringIO()
    # Its registry also warns, once per process, about torchvision ops this model does not use.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(chatter):
            program = torch.onnx.export(
                module, (example,), dynamo=True, optimize=True, external_data=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
            )
            program.save(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        sys.stderr.write(chatter.getvalue())
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


# ------------------------------------------------------------------------------------------
# cache


def cache_dir() -> Path:
    """``$VSSAVSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/vssavsr``, else ``~/.cache/vssavsr``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vssavsr"


_DIGESTS: dict[tuple, str] = {}
_DIGESTS_LOCK = threading.Lock()
_EXPORT_LOCK = threading.Lock()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes (remembered per path, size and mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        digest = _DIGESTS.get(key)
    if digest is None:
        digest = file_sha256(path)
        with _DIGESTS_LOCK:
            _DIGESTS[key] = digest
    return digest


def cached_graph_path(checkpoint: str | os.PathLike, spec: GraphSpec, folder: str | os.PathLike | None = None) -> Path:
    """Where the graph of ``checkpoint`` for ``spec`` lives in the cache (it may not exist yet)."""
    folder = Path(folder) if folder is not None else cache_dir()
    return folder / "onnx" / spec.file_name(file_digest(checkpoint))


def cached_graph(
    checkpoint: str | os.PathLike,
    net: nn.Module,
    spec: GraphSpec,
    folder: str | os.PathLike | None = None,
    on_export: Callable[[Path], None] | None = None,
) -> Path:
    """The cached graph of ``checkpoint`` (whose network is ``net``) for ``spec``; exported on first use.

    ``on_export(path)`` is called before an export starts (it takes tens of seconds)."""
    path = cached_graph_path(checkpoint, spec, folder)
    if path.is_file():
        return path
    with _EXPORT_LOCK:
        if not path.is_file():
            if on_export is not None:
                on_export(path)
            export_graph(net, spec, path)
    return path
