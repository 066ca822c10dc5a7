"""Evaluating a VapourSynth script in this process, as vspipe would, and what the script may ask.

Each chunk task and the planner run the same ``.vpy`` with the same arguments (``--arg key=value``
becomes a global string ``key``, like ``vspipe -a``). :func:`current_chunk` tells a script (or a
filter inside it) which frames this process renders: ``(start, end)`` inside a chunk task, ``None``
while the encoder plans or when the script runs anywhere else.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from pathlib import Path
from typing import Iterator, Mapping

_chunk: tuple[int, int] | None = None


class ScriptError(RuntimeError):
    """The script failed or set no usable output."""


def current_chunk() -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of the chunk this process renders, else ``None``."""
    return _chunk


@contextlib.contextmanager
def rendering(chunk: tuple[int, int] | None) -> Iterator[None]:
    global _chunk
    old, _chunk = _chunk, (None if chunk is None else (int(chunk[0]), int(chunk[1])))
    try:
        yield
    finally:
        _chunk = old


@contextlib.contextmanager
def working_directory(path: str | os.PathLike | None) -> Iterator[None]:
    """Relative paths in the script resolve as they did where the encode was started."""
    if path is None:
        yield
        return
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def parse_args(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{"key": "value"}`` (values stay strings, as with ``vspipe -a``)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--arg {pair!r}: expected key=value with a Python name as key (e.g. --arg scale=2)")
        out[key] = value
    return out


def load_output(script: str | os.PathLike, args: Mapping[str, str] | None = None, index: int = 0):
    """Run ``script`` and return its output clip number ``index`` (``clip.set_output(index)``)."""
    import vapoursynth as vs

    path = Path(script).resolve()
    if not path.is_file():
        raise ScriptError(f"script not found: {path}")
    vs.clear_outputs()
    sys.path.insert(0, str(path.parent))  # helper modules beside the script import as under vspipe
    try:
        runpy.run_path(str(path), init_globals=dict(args or {}), run_name="__vapoursynth__")
    except vs.Error as exc:
        raise ScriptError(f"{path.name}: {exc}") from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path.parent))
    outputs = vs.get_outputs()
    if index not in outputs:
        raise ScriptError(f"{path.name} sets no output {index} (end the script with clip.set_output())")
    out = outputs[index]
    clip = getattr(out, "clip", out)
    if not isinstance(clip, vs.VideoNode):
        raise ScriptError(f"{path.name}: output {index} is not a video clip")
    return clip
