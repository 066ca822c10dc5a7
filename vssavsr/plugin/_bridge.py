"""Entry points of the native shim (shim.c). Each returns bytes on success, a str message on error.

Nothing here may raise: the shim turns a str into a VapourSynth error (vs.Error in the script,
or a frame error that stops vspipe with the message).
"""

from __future__ import annotations

import os
import traceback

PREFIX = "savsr.Upscale"

_DEBUG = bool(os.environ.get("VSSAVSR_DEBUG"))


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if _DEBUG:
        text += "\n" + "".join(traceback.format_exception(exc))
    return text


def create_upscale(key: int):
    """core.savsr.Upscale: fetch the arguments, build the graph, hand the clip back."""
    try:
        import vapoursynth as vs

        core = vs.core
        args = core.savsr.InternalArgs(key=key)
        if not isinstance(args, dict):  # pragma: no cover - InternalArgs always adds _key
            args = {"clip": args}
        args = dict(args)
        args.pop("_key", None)
        clip = args.pop("clip")
        from vssavsr.plugin.upscale import upscale

        out = upscale(clip, **args)
        core.savsr.InternalReturn(key=key, clip=out)
        return b""
    except Exception as exc:  # vs.Error carries our message already
        import vapoursynth as vs

        if isinstance(exc, vs.Error):
            msg = str(exc)
            return msg if msg.startswith("savsr.") else f"{PREFIX}: {msg}"
        return f"{PREFIX}: {_describe(exc)}"
    except BaseException as exc:  # KeyboardInterrupt, SystemExit: still no exception into C
        return f"{PREFIX}: interrupted ({type(exc).__name__})"


def _free_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:
        pass


def _graph_backend(handle: int) -> str | None:
    """The backend ("ort", "ov", "trt") of filter ``handle`` when it runs an exported graph, which refuses tiles."""
    try:
        from vssavsr.engine.backends import GraphRunner
        from vssavsr.plugin import frames

        runner = frames.get(handle).runner
    except BaseException:
        return None
    return runner.backend if isinstance(runner, GraphRunner) else None


def _tiling_advice(graph: str | None, example: str) -> str:
    """How to tile: ``tile=`` directly on the torch backend, else by moving to it (graph backends run whole frames)."""
    if graph is None:
        return example
    return f"backend='torch' with {example} (backend={graph!r} runs whole frames and cannot tile)"


def _frame_error(n: int, exc: BaseException, handle: int) -> str:
    name = type(exc).__name__
    text = str(exc)
    graph = _graph_backend(handle)
    if "OutOfMemory" in name or "out of memory" in text.lower() or isinstance(exc, MemoryError):
        _free_cuda_cache()
        batch = "" if graph is not None else ", lower batch (e.g. batch=1)"
        advice = _tiling_advice(graph, "tile=N to upscale the frame in tiles of at most N LR pixels (e.g. tile=256)")
        hint = f" -- out of memory: use {advice}{batch}, or fp16 on CUDA"
    elif name == "CheckpointError":
        hint = " -- check the checkpoint file"
    else:
        hint = f" -- if this is a memory or size problem, try {_tiling_advice(graph, 'tile=256')}"
        hint += " and batch=1" if graph is None else ""
    return f"{PREFIX}: frame {n}: {_describe(exc)}{hint}"


def plan(handle: int, n: int):
    try:
        from vssavsr.plugin import frames

        return frames.plan(handle, n)
    except BaseException as exc:
        return _frame_error(n, exc, handle)


def process(handle, n, idx, flags, src, src_stride, dst, dst_stride, src_height):
    try:
        from vssavsr.plugin import frames

        frames.process(handle, n, idx, flags, src, src_stride, dst, dst_stride, src_height)
        return b""
    except BaseException as exc:
        try:
            from vssavsr.plugin import frames

            frames.cancel(handle, n)
        except BaseException:
            pass
        return _frame_error(n, exc, handle)


def cancel(handle: int, n: int):
    try:
        from vssavsr.plugin import frames

        frames.cancel(handle, n)
        return b""
    except BaseException as exc:
        return _describe(exc)


def release(handle: int):
    try:
        from vssavsr.plugin import frames

        frames.release(handle)
        return b""
    except BaseException as exc:
        return _describe(exc)
