"""savsr.Upscale: argument checks, output size, source window, and the filter graph.

``upscale(clip, ...)`` is both ``vssavsr.upscale`` and what ``core.savsr.Upscale`` runs (the
native plugin hands its arguments over to it). Every bad argument raises ``vs.Error`` whose
message starts with ``savsr.Upscale: <argument>:`` and says how to fix it.

Graph: clip -> RGBS (per-frame props, formats.py) -> savsr.InternalFilter (model; frames.py,
engine) -> back to the clip's format -> the input frame's props (SAR updated).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import vapoursynth as vs

from vssavsr.plugin import formats

PREFIX = "savsr.Upscale"
#: Most windows per model call (the native filter requests at most batch + 6 frames at once).
MAX_BATCH = 256


def _err(arg: str, msg: str) -> vs.Error:
    return vs.Error(f"{PREFIX}: {arg}: {msg}")


@dataclass(frozen=True)
class Geometry:
    """Output size and source window (LR pixel units, like core.resize)."""

    width: int
    height: int
    src_left: float
    src_top: float
    src_width: float
    src_height: float

    @property
    def scale(self) -> tuple[float, float]:
        """(sy, sx): output pixels per source pixel."""
        return self.height / self.src_height, self.width / self.src_width

    @property
    def offset(self) -> tuple[float, float]:
        return self.src_top, self.src_left


def _number(name: str, value: Any, kind=float, allow_none=True):
    if value is None:
        if allow_none:
            return None
        raise _err(name, "is required")
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise _err(name, f"expects one value, got {len(value)}")
        value = value[0]
    if isinstance(value, bool):
        value = int(value)
    try:
        if kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise _err(name, f"must be {'an int' if kind is int else 'a number'}, got {value!r}") from None


def _check_scale(name: str, v: float) -> float:
    from vssavsr.engine.runner import MAX_SCALE

    if math.isnan(v):
        raise _err(name, f"NaN is not a scale factor: give a number > 0 such as {name}=2.0")
    if v <= 0:
        raise _err(name, f"{v:g} is not a scale factor: it must be > 0 (e.g. {name}=2.0)")
    if v > MAX_SCALE:
        raise _err(name, f"{v:g} is above the supported maximum of {MAX_SCALE:g} per axis; upscale in two steps")
    return v


def _round_to(v: float, mod: int) -> int:
    return max(mod, int(math.floor(v / mod + 0.5)) * mod)


def compute_geometry(
    clip: vs.VideoNode,
    sx=None,
    sy=None,
    width=None,
    height=None,
    src_left=None,
    src_top=None,
    src_width=None,
    src_height=None,
) -> Geometry:
    """Check the size arguments and compute the output size (exactly one way of saying it)."""
    w, h = clip.width, clip.height
    fmt = clip.format
    mod_w = 1 << fmt.subsampling_w
    mod_h = 1 << fmt.subsampling_h
    sx = _number("sx", sx)
    sy = _number("sy", sy)
    width = _number("width", width, int)
    height = _number("height", height, int)
    left = _number("src_left", src_left) or 0.0
    top = _number("src_top", src_top) or 0.0
    sw = _number("src_width", src_width)
    sh = _number("src_height", src_height)
    for name, v in (("src_left", left), ("src_top", top), ("src_width", sw), ("src_height", sh)):
        if v is not None and not math.isfinite(v):
            raise _err(name, f"must be finite, got {v}")
    # Like core.resize: unset means the whole frame, <= 0 is relative to the right/bottom edge.
    if sw is None:
        sw = float(w)
    elif sw <= 0:
        sw = w - left + sw
    if sh is None:
        sh = float(h)
    elif sh <= 0:
        sh = h - top + sh
    if sw <= 0:
        raise _err("src_width", f"the source window is {sw:g} pixels wide: it must be > 0")
    if sh <= 0:
        raise _err("src_height", f"the source window is {sh:g} pixels high: it must be > 0")

    by_scale = sx is not None or sy is not None
    by_size = width is not None or height is not None
    if by_scale and by_size:
        given = [n for n, v in (("sx", sx), ("sy", sy), ("width", width), ("height", height)) if v is not None]
        raise _err(
            "sx/sy and width/height",
            f"both a scale and a size were given ({', '.join(given)}); say the size one way: "
            "sx (and sy) or width (and/or height)",
        )
    if not by_scale and not by_size:
        raise _err("sx", "no output size given: pass a scale (sx, and sy for another vertical scale) or width/height")
    if by_scale:
        if sx is None:
            raise _err("sx", "sy was given without sx; pass sx (sy defaults to sx)")
        sx = _check_scale("sx", sx)
        sy = _check_scale("sy", sy) if sy is not None else sx
        out_w = _round_to(sw * sx, mod_w)
        out_h = _round_to(sh * sy, mod_h)
    else:
        for name, v, mod in (("width", width, mod_w), ("height", height, mod_h)):
            if v is not None:
                if v <= 0:
                    raise _err(name, f"{v} is not a size: it must be > 0")
                if v % mod:
                    raise _err(name, f"{v} is not a multiple of {mod}, which {fmt.name} needs (chroma subsampling)")
        if width is None:
            width = _round_to(height * sw / sh, mod_w)
        if height is None:
            height = _round_to(width * sh / sw, mod_h)
        out_w, out_h = width, height
        _check_scale("width", out_w / sw)
        _check_scale("height", out_h / sh)
    return Geometry(out_w, out_h, left, top, sw, sh)


def _tile_arg(tile) -> tuple[int, int] | None:
    if tile is None:
        return None
    values = list(tile) if isinstance(tile, (list, tuple)) else [tile]
    if len(values) not in (1, 2):
        raise _err("tile", f"expects one size or [width, height], got {len(values)} values")
    try:
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        raise _err("tile", f"must be ints, got {tile!r}") from None
    if len(values) == 1:
        values = values * 2
    tw, th = values
    if tw == 0 and th == 0:
        return None
    if tw < 0 or th < 0:
        raise _err("tile", f"{tile!r}: tile sizes must be > 0 (0 turns tiling off)")
    return (th, tw)


def _text(name: str, value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _err(name, f"must be a string, got {type(value).__name__}")
    return value


def _bool(name: str, value) -> bool | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise _err(name, f"must be True/False (1/0), got {value!r}")


def upscale(
    clip: vs.VideoNode,
    sx: float | None = None,
    sy: float | None = None,
    width: int | None = None,
    height: int | None = None,
    src_left: float | None = None,
    src_top: float | None = None,
    src_width: float | None = None,
    src_height: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    model: str | None = None,
    device_index: int | None = None,
    fp16: bool | None = None,
    tile: int | Sequence[int] | None = None,
    tile_pad: int | None = None,
    batch: int | None = None,
    scene_detect: bool | None = None,
    backend: str | None = None,
    ensemble: int | None = None,
) -> vs.VideoNode:
    """Upscale ``clip`` with SAVSR (see ``core.savsr.Upscale`` in the README for the arguments)."""
    import torch

    from vssavsr.engine import ensemble as self_ensemble
    from vssavsr.engine import runner as engine
    from vssavsr.engine import tiling
    from vssavsr.plugin import frames, native, scenes

    if not isinstance(clip, vs.VideoNode):
        raise _err("clip", f"must be a video clip, got {type(clip).__name__}")
    if getattr(clip, "gpu_resident", False):  # VapourSynth GPU frames: the model reads CPU frames
        clip = vs.core.std.GPUDownload(clip)
    formats.check_format(clip)
    geo = compute_geometry(clip, sx, sy, width, height, src_left, src_top, src_width, src_height)

    tile_hw = _tile_arg(tile)
    pad = _number("tile_pad", tile_pad, int)
    if pad is not None and pad < 0:
        raise _err("tile_pad", f"{pad}: the overlap must be >= 0 LR pixels")
    if tile_hw is not None:
        try:
            for t in tile_hw:
                tiling.check_tile(t, tiling.DEFAULT_PAD if pad is None else pad)
        except ValueError as exc:
            raise _err("tile", str(exc)) from None
    batch = _number("batch", batch, int)
    if batch is None:
        batch = 4
    if not 1 <= batch <= MAX_BATCH:
        raise _err("batch", f"{batch}: windows per model call must be in 1..{MAX_BATCH}")
    ensemble = _number("ensemble", ensemble, int)
    ensemble = 1 if ensemble is None else ensemble
    try:
        self_ensemble.check_size(ensemble)
    except ValueError as exc:
        raise _err("ensemble", str(exc)) from None
    fp16 = _bool("fp16", fp16)
    scene_detect = _bool("scene_detect", scene_detect)
    device_index = _number("device_index", device_index, int)
    checkpoint = _text("checkpoint", checkpoint)
    model = _text("model", model)

    backend = _text("backend", backend) or "torch"
    target = _backend_target(backend, device_index, fp16, tile_hw, ensemble)
    if target is None:
        try:
            device = engine.resolve_device(device_index)
        except engine.EngineError as exc:
            raise _err("device_index", str(exc)) from None
        try:
            use_fp16 = engine.resolve_precision(device, fp16)
        except engine.EngineError as exc:
            raise _err("fp16", str(exc)) from None
    else:  # the network is loaded on the CPU to be exported; the runtime runs it on target.device
        device, use_fp16 = target.device, False

    if checkpoint is not None and model is not None:
        raise _err("checkpoint/model", "give either checkpoint=PATH or model=NAME, not both")
    try:
        if checkpoint is not None:
            path = checkpoint
        elif model is not None:
            path = engine.shipped_checkpoint(model)
        else:
            path = engine.default_checkpoint(device)
    except engine.EngineError as exc:
        raise _err("model" if model is not None else "checkpoint", str(exc)) from None
    try:
        runner = engine.get_runner(path, device if target is None else torch.device("cpu"), use_fp16)
    except engine.EngineError as exc:
        raise _err("checkpoint", str(exc)) from None
    except Exception as exc:  # CheckpointError and anything a broken file raises
        raise _err("checkpoint", f"cannot load {str(path)!r}: {exc}") from None

    min_side = min_input_size(runner)
    if clip.width < min_side or clip.height < min_side:
        raise _err(
            "clip",
            f"{clip.width}x{clip.height} is too small for the model (it needs at least {min_side}x{min_side} "
            "pixels); pad it first (core.std.AddBorders) or use core.resize for tiny clips",
        )

    if tile_hw is not None:
        _warn_tile_overhead(clip, geo, tile_hw, tiling.DEFAULT_PAD if pad is None else pad)

    # Scene flags first: the windows read them from the RGBS frames, the output keeps them.
    clip = scenes.mark_scene_cuts(clip, scene_detect)
    sar = formats.sar_factor(geo.src_width, geo.src_height, geo.width, geo.height)
    if scenes.props_only_active():  # vssavsr-encode's planning pass: sizes and scene flags; no graph export
        stand_in = vs.core.std.BlankClip(clip, width=geo.width, height=geo.height, keep=True)
        return formats.restore_props(stand_in, clip, sar)
    if target is not None:
        runner = _backend_runner(target, path, runner, clip, geo)
    rgb = formats.to_rgbs(clip)
    core = vs.core
    native.ensure_namespace(core)
    session = engine.UpscaleSession(
        runner,
        num_frames=clip.num_frames,
        lr_size=(clip.height, clip.width),
        out_size=(geo.height, geo.width),
        scale=geo.scale,
        offset=geo.offset,
        batch=batch,
        tile=tile_hw,
        tile_pad=pad,
        ensemble=ensemble,
        window=runner.num_frames,
    )
    handle = frames.register(session)
    try:
        hr = core.savsr.InternalFilter(rgb, width=geo.width, height=geo.height, handle=handle)
    except Exception:
        frames.release(handle)
        raise
    out = formats.from_rgbs(hr, clip)
    return formats.restore_props(out, clip, sar)


def _backend_target(backend: str, device_index, fp16, tile_hw, ensemble: int = 1):
    """None for backend="torch", else the resolved graph backend (vs.Error naming the argument)."""
    from vssavsr.engine import backends

    if backend not in backends.BACKENDS:
        raise _err("backend", f"{backend!r} is not a backend: use one of {', '.join(map(repr, backends.BACKENDS))}")
    if backend == "torch":
        return None
    if tile_hw is not None:
        raise _err(
            "tile",
            f"backend={backend!r} runs an exported graph on whole frames, and its frame-wide pooling would see only "
            "the tile, so tiles would not match the whole frame; leave tile unset or use backend='torch' for tiles",
        )
    if ensemble != 1:
        raise _err(
            "ensemble",
            f"backend={backend!r} runs an exported graph of one orientation; leave ensemble unset (1) or use "
            "backend='torch' to average flipped copies",
        )
    try:
        return backends.resolve(backend, device_index, fp16)
    except backends.BackendError as exc:
        raise _err(exc.arg, str(exc)) from None


def _backend_runner(target, path, torch_runner, clip: vs.VideoNode, geo: "Geometry"):
    """The graph runner for this clip: the cached graph, exported on first use (logged: it takes a while)."""
    from vssavsr.engine import backends

    def on_export(file) -> None:
        vs.core.log_message(
            vs.MESSAGE_TYPE_INFORMATION,
            f"{PREFIX}: backend={target.backend!r}: preparing {file.name} for {clip.width}x{clip.height} -> "
            f"{geo.width}x{geo.height} (first use of this size and scale; cached in {file.parent})",
        )

    try:
        return backends.open_runner(
            target, path, torch_runner.net, (clip.height, clip.width), (geo.height, geo.width), geo.scale,
            geo.offset, on_export=on_export,
        )
    except backends.BackendError as exc:
        raise _err(exc.arg, str(exc)) from None
    except Exception as exc:
        raise _err("backend", f"backend={target.backend!r} could not prepare the model: {type(exc).__name__}: {exc}") from None


#: Tiles whose overlaps make each model pass compute more than this many times the frame's pixels get a warning.
TILE_OVERHEAD_WARNING = 2.0


def _warn_tile_overhead(clip: vs.VideoNode, geo: "Geometry", tile_hw: tuple[int, int], pad: int) -> None:
    """Log a VapourSynth warning when ``tile`` is so small for this clip that the overlaps dominate."""
    from vssavsr.engine import tiling

    lr_size, out_size, scale = (clip.height, clip.width), (geo.height, geo.width), geo.scale
    tiles = tiling.plan_tiles(lr_size, out_size, scale, geo.offset, tile_hw, pad)
    count, overhead = len(tiles), tiling.overlap_cost(tiles, lr_size)
    if overhead <= TILE_OVERHEAD_WARNING:
        return
    th, tw = tiling.efficient_tile(lr_size, out_size, scale, tile_hw, pad)
    hint = "leave tile unset" if (th, tw) == lr_size else f"tile=[{tw}, {th}]"
    vs.core.log_message(
        vs.MESSAGE_TYPE_WARNING,
        f"savsr.Upscale: tile=[{tile_hw[1]}, {tile_hw[0]}] with tile_pad={pad} cuts each {clip.width}x{clip.height} "
        f"frame into {count} tiles whose overlaps make the model compute {overhead:.1f}x the frame's pixels; "
        f"if memory allows, {hint} (or a smaller tile_pad, at some cost in quality near tile borders)",
    )


def min_input_size(runner) -> int:
    """Smallest LR side the model accepts (from the model when it says, else a safe default)."""
    net = getattr(runner, "net", None)
    for name in ("min_input_size", "MIN_INPUT_SIZE"):
        v = getattr(net, name, None)
        if v is not None:
            v = v() if callable(v) else v
            return int(v)
    return 8
