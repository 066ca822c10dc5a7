"""Format conversions around the model: any constant format <-> RGBS, and the output props.

The model sees RGB in [0, 1]. Input frames are converted with core.resize, per frame, using the
frame's own props (``_Matrix``, ``_Range``/``_ColorRange``, ``_ChromaLocation``); an unset or
unspecified matrix means BT.709 for HD (width >= 1280 or height >= 720) and BT.470BG for SD.
The upscaled RGBS frames are converted back to the input's format with the same settings as
that frame's input (chroma with bicubic, no dithering: deterministic), then get the input
frame's props back, with ``_SARNum``/``_SARDen`` updated so that the display aspect ratio is
unchanged when the two axes are scaled differently.

GRAY clips are upscaled as neutral RGB (the plane three times) and averaged back.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Callable

import vapoursynth as vs

#: Matrix coefficients resize can convert YUV with (the _Matrix values that make sense on YUV).
YUV_MATRICES = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14})
MATRIX_BT709 = 1
MATRIX_BT470BG = 5
RANGE_LIMITED = 0  # resize's and _Range's convention
RANGE_FULL = 1


def default_matrix(width: int, height: int) -> int:
    """BT.709 for HD sizes, BT.470BG (the SD "601" matrix) otherwise."""
    return MATRIX_BT709 if width >= 1280 or height >= 720 else MATRIX_BT470BG


def check_format(clip: vs.VideoNode) -> None:
    """vs.Error when the clip cannot be upscaled as a whole (naming what to fix)."""
    fmt = clip.format
    if fmt is None or fmt.id == 0:
        raise vs.Error(
            "savsr.Upscale: clip: variable format is not supported; convert it to one format first "
            "(e.g. clip = core.resize.Bicubic(clip, format=vs.YUV420P8))"
        )
    if clip.width == 0 or clip.height == 0:
        raise vs.Error(
            "savsr.Upscale: clip: variable frame size is not supported; resize every frame to one size first "
            "(e.g. core.resize.Bicubic(clip, width=W, height=H))"
        )
    if fmt.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise vs.Error(f"savsr.Upscale: clip: color family {fmt.color_family.name} is not supported (RGB, YUV or GRAY)")
    if fmt.sample_type == vs.INTEGER and not 8 <= fmt.bits_per_sample <= 16:
        raise vs.Error(
            f"savsr.Upscale: clip: {fmt.name} has {fmt.bits_per_sample}-bit samples; integer formats of 8 to 16 bits, "
            "half and single float are supported"
        )
    if clip.num_frames < 1:
        raise vs.Error("savsr.Upscale: clip: the clip has no frames")


def conversion_key(props, fmt: vs.VideoFormat, width: int, height: int) -> tuple:
    """(matrix, range, chromaloc) used to convert a frame with these props to RGB and back."""
    family = fmt.color_family
    matrix = None
    chromaloc = None
    if family == vs.YUV:
        matrix = props.get("_Matrix")
        if matrix not in YUV_MATRICES:
            matrix = default_matrix(width, height)
        if fmt.subsampling_w or fmt.subsampling_h:
            chromaloc = props.get("_ChromaLocation", 0)
            if chromaloc not in range(6):
                chromaloc = 0
    rng = None
    if fmt.sample_type == vs.INTEGER:
        rng = props.get("_Range")
        if rng not in (RANGE_LIMITED, RANGE_FULL):
            legacy = props.get("_ColorRange")  # deprecated: 0 full, 1 limited
            rng = {0: RANGE_FULL, 1: RANGE_LIMITED}.get(legacy)
        if rng is None:
            rng = RANGE_FULL if family == vs.RGB else RANGE_LIMITED
        rng = int(rng)
    return (None if matrix is None else int(matrix), rng, None if chromaloc is None else int(chromaloc))


def _kw(**kwargs):
    return {k: v for k, v in kwargs.items() if v is not None}


def to_rgbs_for_key(clip: vs.VideoNode, key: tuple) -> vs.VideoNode:
    core = vs.core
    matrix, rng, chromaloc = key
    fmt = clip.format
    if fmt.color_family == vs.RGB:
        if fmt.id == vs.RGBS:
            return clip
        return core.resize.Point(clip, format=vs.RGBS, **_kw(range_in=rng))
    if fmt.color_family == vs.GRAY:
        g = clip if fmt.id == vs.GRAYS else core.resize.Point(clip, format=vs.GRAYS, **_kw(range_in=rng))
        return core.std.ShufflePlanes([g, g, g], [0, 0, 0], vs.RGB)
    return core.resize.Bicubic(clip, format=vs.RGBS, **_kw(matrix_in=matrix, range_in=rng, chromaloc_in=chromaloc))


def from_rgbs_for_key(rgb: vs.VideoNode, fmt: vs.VideoFormat, key: tuple) -> vs.VideoNode:
    core = vs.core
    matrix, rng, chromaloc = key
    if fmt.color_family == vs.RGB:
        if fmt.id == vs.RGBS:
            return rgb
        return core.resize.Point(rgb, format=fmt.id, **_kw(range=rng))
    if fmt.color_family == vs.GRAY:
        planes = [core.std.ShufflePlanes(rgb, i, vs.GRAY) for i in range(3)]
        g = core.std.Expr(planes, "x y + z + 3 /")
        if fmt.id == vs.GRAYS:
            return g
        return core.resize.Point(g, format=fmt.id, **_kw(range=rng))
    return core.resize.Bicubic(rgb, format=fmt.id, **_kw(matrix=matrix, range=rng, chromaloc=chromaloc))


class _PerFrameConversion:
    """FrameEval selector that picks (and lazily builds) the conversion for each frame's props."""

    def __init__(self, build: Callable[[tuple], vs.VideoNode], fmt: vs.VideoFormat, width: int, height: int):
        self.build = build
        self.fmt = fmt
        self.width = width
        self.height = height
        self.nodes: dict[tuple, vs.VideoNode] = {}
        self.lock = threading.Lock()

    def node(self, key: tuple) -> vs.VideoNode:
        with self.lock:
            node = self.nodes.get(key)
            if node is None:
                node = self.nodes[key] = self.build(key)
            return node

    def __call__(self, n: int, f: vs.VideoFrame) -> vs.VideoNode:
        return self.node(conversion_key(f.props, self.fmt, self.width, self.height))


def _needs_per_frame(fmt: vs.VideoFormat) -> bool:
    return not (fmt.color_family in (vs.RGB, vs.GRAY) and fmt.sample_type == vs.FLOAT)


def to_rgbs(clip: vs.VideoNode) -> vs.VideoNode:
    """The clip as RGBS (converted per frame with that frame's props)."""
    fmt = clip.format
    if not _needs_per_frame(fmt):
        return to_rgbs_for_key(clip, (None, None, None))
    sel = _PerFrameConversion(lambda key: to_rgbs_for_key(clip, key), fmt, clip.width, clip.height)
    template = vs.core.std.BlankClip(clip, format=vs.RGBS, keep=True)
    return vs.core.std.FrameEval(template, sel, prop_src=clip)


def from_rgbs(rgb: vs.VideoNode, like: vs.VideoNode) -> vs.VideoNode:
    """``rgb`` (RGBS, any size) back in ``like``'s format, converted per frame with ``like``'s frame props."""
    fmt = like.format
    if not _needs_per_frame(fmt):
        return from_rgbs_for_key(rgb, fmt, (None, None, None))
    sel = _PerFrameConversion(lambda key: from_rgbs_for_key(rgb, fmt, key), fmt, like.width, like.height)
    template = vs.core.std.BlankClip(rgb, format=fmt.id, keep=True)
    return vs.core.std.FrameEval(template, sel, prop_src=like)


def sar_factor(src_width: float, src_height: float, width: int, height: int) -> Fraction:
    """Factor for _SARNum/_SARDen that keeps the display aspect ratio of the source window."""
    f = (Fraction(src_width) * height) / (Fraction(width) * Fraction(src_height))
    return f.limit_denominator(1 << 20)


def restore_props(out: vs.VideoNode, like: vs.VideoNode, sar: Fraction) -> vs.VideoNode:
    """``out`` with every frame's props replaced by those of ``like``'s frame, SAR multiplied by ``sar``."""

    def selector(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = f[0].copy()
        props = fout.props
        src = dict(f[1].props)
        for k in list(props.keys()):
            if k not in src:
                del props[k]
        props.update(src)
        if sar != 1:
            num, den = src.get("_SARNum"), src.get("_SARDen")
            if num is None or den is None:
                num, den = 1, 1
            if num > 0 and den > 0:
                new = (Fraction(int(num), int(den)) * sar).limit_denominator(1 << 20)
                props["_SARNum"] = new.numerator
                props["_SARDen"] = new.denominator
        return fout

    return vs.core.std.ModifyFrame(out, [out, like], selector)
