"""ONNX Runtime: the CPU provider, or the CUDA provider (onnxruntime-gpu) with inputs and outputs bound on the GPU."""

from __future__ import annotations

import numpy as np
import torch

from . import GraphRunner
from .export import INPUT_NAME, OUTPUT_NAME


class OrtRunner(GraphRunner):
    backend = "ort"

    def __init__(self, spec, path, target, threads: int = 1):
        super().__init__(spec, path, target)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: warnings about folding would go to the user's console
        if target.device.type == "cuda":
            providers = [("CUDAExecutionProvider", {"device_id": target.device_index}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.dtype = torch.float16 if spec.fp16 else torch.float32

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self.device.type != "cuda":
            out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
            return torch.from_numpy(out)
        out = torch.empty(self.spec.output_shape, dtype=self.dtype, device=self.device)
        np_dtype = np.float16 if self.spec.fp16 else np.float32
        binding = self.session.io_binding()
        k = self.target.device_index
        binding.bind_input(INPUT_NAME, "cuda", k, np_dtype, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", k, np_dtype, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return out
