"""The ``model`` backend: our PyTorch network on preloaded tensors, as the mode's ``ModeSpec`` sets it up (fused or
reference, precision, memory format, ``torch.compile``): the ``raw`` fast path, the ``naive`` literal form, and the
one-lever variants of ``--sweep``."""

from __future__ import annotations

import argparse
import contextlib
import warnings
from dataclasses import replace

import torch

from vssavsr.engine import tiling
from vssavsr.model import SAVSR, load_checkpoint
from vssavsr.model.flops import LiveTensorBytes
from vssavsr.model.savsr import pad_to_even

from ..cases import WINDOW, Case
from ..child import time_calls
from ..modes import ModeSpec


def modes(device: str, args: argparse.Namespace) -> dict[str, ModeSpec]:
    cuda = device == "cuda"
    raw = ModeSpec(
        "raw",
        precision=args.precision or ("fp16" if cuda else "fp32"),
        cast=args.cast,
        channels_last=True if args.channels_last is None else args.channels_last,
        compile=args.compile,
        cudnn_benchmark=cuda,
    )
    naive = ModeSpec("naive", reference=True, fuse=False, precision="fp32", batch=1, conv_part=False)
    return {"raw": raw, "naive": naive}


def levers(device: str, raw: ModeSpec) -> list[ModeSpec]:
    """One-lever-at-a-time variants of the raw fast path (``--sweep``)."""
    v = [
        replace(raw, label="lever:unfused-bn", fuse=False),
        replace(raw, label="lever:batch-1", batch=1),
        replace(raw, label="lever:channels-last-" + ("off" if raw.channels_last else "on"), channels_last=not raw.channels_last),
    ]
    if device == "cuda":
        v += [
            replace(raw, label="lever:fp32", precision="fp32", tf32=False),
            replace(raw, label="lever:fp32-tf32", precision="fp32", tf32=True),
            replace(raw, label="lever:fp16-autocast", precision="fp16", cast="autocast"),
            replace(raw, label="lever:bf16", precision="bf16"),
            replace(raw, label="lever:no-cudnn-benchmark", cudnn_benchmark=False),
        ]
        if raw.compile is None:
            v += [
                replace(raw, label="lever:compile", compile="max-autotune-no-cudagraphs"),
                replace(raw, label="lever:compile-cudagraphs", compile="reduce-overhead"),
            ]
    return v


def dtype_of(precision: str):
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def prepare_net(net, spec: ModeSpec, device):
    """Put a loaded network into the state ``spec`` asks for (eval, reference or fused, dtype,
    memory format) on ``device``; returns the network."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.set_reference_mode(spec.reference)
    if spec.fuse and not spec.reference:
        net.fuse_for_inference()
    net.to(device)
    if spec.precision != "fp32" and spec.cast == "half":
        net.to(dtype_of(spec.precision))
    if spec.channels_last:
        net.use_channels_last()
    return net


def input_dtype(spec: ModeSpec):
    return dtype_of(spec.precision) if spec.precision != "fp32" and spec.cast == "half" else torch.float32


def make_model_fn(net, spec: ModeSpec, device, out_size, tile: int | None = None):
    """``fn(frames) -> (B, 3, H, W)``: one model call as ``spec`` says (autocast, compile, tiles)."""
    model = net
    if spec.compile:
        model = torch.compile(net, mode=None if spec.compile == "default" else spec.compile, dynamic=False)
    if spec.precision != "fp32" and spec.cast == "autocast":
        ctx = lambda: torch.autocast(device.type, dtype=dtype_of(spec.precision))  # noqa: E731
    else:
        ctx = contextlib.nullcontext

    def call(frames, size, scale=None, offset=None):
        with ctx():
            return model(frames, out_size=tuple(size), scale=scale, offset=offset)

    if tile:
        def fn(frames):
            h, w = frames.shape[-2:]
            scale = (out_size[0] / h, out_size[1] / w)
            return tiling.tiled_forward(lambda f, s, sc, off: call(f, s, sc, off), frames, out_size, scale, (0.0, 0.0), tile)
    else:

        def fn(frames):
            return call(frames, out_size)

    return fn


def make_features_fn(net, spec: ModeSpec, device, out_size):
    """``fn(frames) -> (A, R)``: the convolution-heavy part alone (alignment, fusion, reconstruction)."""
    feats = net.features
    if spec.compile:
        feats = torch.compile(net.features, mode=None if spec.compile == "default" else spec.compile, dynamic=False)
    if spec.precision != "fp32" and spec.cast == "autocast":
        ctx = lambda: torch.autocast(device.type, dtype=dtype_of(spec.precision))  # noqa: E731
    else:
        ctx = contextlib.nullcontext

    def fn(frames):
        b, _, _, h, w = frames.shape
        inv = frames.new_tensor([h / out_size[0], w / out_size[1]]).expand(b, 2)
        with ctx():
            return feats(pad_to_even(frames), inv)

    return fn


def set_backend_flags(spec: ModeSpec, device) -> None:
    if device.type == "cuda" and spec.kind == "model":
        torch.backends.cudnn.benchmark = bool(spec.cudnn_benchmark)
        torch.backends.cudnn.allow_tf32 = bool(spec.tf32)
        torch.backends.cuda.matmul.allow_tf32 = bool(spec.tf32)


def estimate_peak_bytes(config, case: Case, spec: ModeSpec) -> int | None:
    """Peak bytes of tensors alive during one call, tracked on the ``meta`` device (no compute) with
    ``vssavsr.model.flops.LiveTensorBytes``: activations only (weights and inputs excluded); cuDNN workspaces and
    allocator slack are not counted. A prediction, not a measurement."""
    if case.tile:
        return None
    try:
        dt = input_dtype(spec)
        with torch.device("meta"):
            net = SAVSR(config).eval()
            net.set_reference_mode(spec.reference)
            if spec.fuse and not spec.reference:
                net.fuse_for_inference()
            net.to(dt)
            x = torch.empty(spec.batch or case.batch, WINDOW, 3, *case.lr_size, dtype=dt)
        tracker = LiveTensorBytes()
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tracker:
                y = net(x, out_size=case.out_size)
                del y
        return tracker.peak
    except Exception:  # noqa: BLE001 - an estimate only
        return None


def run(job: dict, spec: ModeSpec, case: Case, device, frames_np) -> dict:
    set_backend_flags(spec, device)
    net, _ = load_checkpoint(job["checkpoint"], map_location="cpu")
    net = prepare_net(net, spec, device)
    frames = torch.from_numpy(frames_np).to(device, input_dtype(spec))
    fn = make_model_fn(net, spec, device, case.out_size, case.tile)
    feats_fn = make_features_fn(net, spec, device, case.out_size) if spec.conv_part and not case.tile else None
    return time_calls(fn, frames, case, spec.batch or case.batch, device, feats_fn, job.get("save_ref"))
