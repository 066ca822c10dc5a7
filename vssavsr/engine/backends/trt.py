"""TensorRT: an engine built from the cached graph (and cached beside it), run on PyTorch's CUDA stream.

Precision comes from the graph (strongly typed network): the fp16 graph runs the network in half
precision with the grid sampling in fp32, as the PyTorch fp16 path does; the fp32 graph runs in
fp32 (TF32 where TensorRT picks it). TensorRT 11 has no other way; 10.x is asked for the same.
The engine is specific to the GPU model and the TensorRT version, which its file name holds."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Callable

import torch

from . import GraphRunner

_BUILD_LOCK = threading.Lock()


def engine_path(onnx_path: Path, folder: Path, device: torch.device) -> Path:
    import tensorrt as trt

    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(device)).strip("-")
    major, minor = torch.cuda.get_device_capability(device)
    return Path(folder) / "trt" / f"{onnx_path.stem}-{gpu}-sm{major}{minor}-trt{trt.__version__}.engine"


def build_engine(onnx_path: Path, out: Path, workspace: int | None = None) -> Path:
    """Parse the ONNX graph and write the serialized engine to ``out`` (atomically)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is not None:  # 10.x: opt in; 11.x: always strongly typed (the flag is accepted)
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if workspace:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(plan))
    os.replace(tmp, out)
    return out


class TrtRunner(GraphRunner):
    backend = "trt"

    def __init__(self, spec, path, target, folder, on_export: Callable[[Path], None] | None = None):
        super().__init__(spec, path, target)
        import tensorrt as trt

        self.engine_file = engine_path(self.path, Path(folder), self.device)
        with _BUILD_LOCK, torch.cuda.device(self.device):
            if not self.engine_file.is_file():
                if on_export is not None:
                    on_export(self.engine_file)
                build_engine(self.path, self.engine_file)
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(self.engine_file.read_bytes())
            if self.engine is None:
                raise RuntimeError(f"TensorRT could not load {self.engine_file}; delete it to rebuild")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise RuntimeError(f"{self.engine_file}: expected one input and one output, got {self.inputs}, {self.outputs}")
        self.in_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.inputs[0]))
        self.out_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.outputs[0]))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.cuda.device(self.device):
            x = x.to(self.device, self.in_dtype).contiguous()
            out = torch.empty(self.spec.output_shape, dtype=self.out_dtype, device=self.device)
            self.context.set_tensor_address(self.inputs[0], x.data_ptr())
            self.context.set_tensor_address(self.outputs[0], out.data_ptr())
            stream = torch.cuda.current_stream(self.device)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed (see its log above)")
            return out


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise RuntimeError(f"unexpected TensorRT I/O type {dtype}")
    return table[dtype]
