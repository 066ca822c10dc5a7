"""How each mode runs (``ModeSpec``), and the registry of backends: every module in ``backends/`` is one kind of mode.

A backend module has ``modes(device, args) -> {label: ModeSpec}`` (the modes it offers, cheap: no heavy import)
and ``run(job, spec, case, device, frames) -> dict`` (the measurement in the child process; ``{"skipped": why}``
when what it needs is not installed, an exception when it fails). The model backend also has
``levers(device, raw)``, the one-lever variants of ``--sweep``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType

from . import backends


@dataclass(frozen=True)
class ModeSpec:
    """How one subprocess runs the model. ``kind`` names the backend (``backends/<kind>.py``): model
    (raw/naive/variants), engine, plugin, graph (ort/ov/trt); the other fields are the torch model's settings,
    ``options`` those of any other backend."""

    label: str
    kind: str = "model"
    reference: bool = False
    fuse: bool = True
    precision: str = "fp32"  # fp32 | fp16 | bf16
    cast: str = "half"  # half: weights and inputs converted; autocast: fp32 weights + autocast
    channels_last: bool = False
    batch: int | None = None  # None: the case's batch
    compile: str | None = None  # torch.compile mode ("default", "max-autotune-no-cudagraphs", ...)
    tf32: bool = False
    cudnn_benchmark: bool = False
    conv_part: bool = True  # also time the convolution-heavy part (features) alone
    null_model: bool = False  # plugin kind: replace the model by a no-op (measures the overhead alone)
    options: dict = field(default_factory=dict)  # settings of other backends (backends/<kind>.py reads them)

    def describe(self) -> str:
        if self.kind != "model":
            settings = "".join(f", {k}={v}" for k, v in self.options.items())
            return self.kind + (" with a no-op model (host/VapourSynth overhead only)" if self.null_model else settings)
        bits = ["reference" if self.reference else ("fused" if self.fuse else "unfused"), self.precision]
        if self.precision != "fp32":
            bits.append(self.cast)
        elif self.tf32:
            bits.append("tf32")
        if self.channels_last:
            bits.append("channels-last")
        if self.cudnn_benchmark:
            bits.append("cudnn-benchmark")
        if self.compile:
            bits.append(f"compile={self.compile}")
        return ", ".join(bits)


def backend(kind: str) -> ModuleType:
    """The module of a backend kind (``backends/<kind>.py``)."""
    return importlib.import_module(f"{backends.__name__}.{kind}")


def backend_kinds() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(backends.__path__))


def default_modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    """Every mode the backends offer for ``device`` ("cpu" or "cuda"), by label."""
    modes: dict[str, ModeSpec] = {}
    for kind in backend_kinds():
        modes.update(backend(kind).modes(device, args))
    return modes


def lever_variants(device: str, raw: ModeSpec) -> list[ModeSpec]:
    """One-lever-at-a-time variants of the raw fast path (``--sweep``)."""
    return backend("model").levers(device, raw)
