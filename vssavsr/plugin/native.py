"""Finding the native plugin (libvssavsr.so) that provides core.savsr.

A regular install puts it in VapourSynth's plugin folder, where every core autoloads it. When it
is not there (a core created with autoloading disabled, a source checkout, an editable install),
``ensure_namespace`` loads it explicitly from, in order: $VSSAVSR_PLUGIN, VapourSynth's plugin
folder, vssavsr/plugin/ (in-place and editable builds) and the setuptools build folder of a
source checkout.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import vapoursynth as vs

PLUGIN_ID = "com.vssavsr.savsr"
LIB_NAMES = ("libvssavsr.so", "libvssavsr.dylib", "libvssavsr.dll")


def candidates() -> list[Path]:
    found: list[Path] = []
    env = os.environ.get("VSSAVSR_PLUGIN")
    if env:
        found.append(Path(env))
    try:
        plugin_dir = Path(vs.get_plugin_dir())
        found += [plugin_dir / n for n in LIB_NAMES]
    except Exception:
        pass
    here = Path(__file__).resolve().parent
    found += [here / n for n in LIB_NAMES]  # in-place / editable builds
    root = here.parents[1]
    for pattern in ("build/lib*/vapoursynth/plugins/libvssavsr.*",):
        found += [Path(p) for p in sorted(glob.glob(str(root / pattern)))]
    return found


def has_namespace(core) -> bool:
    try:
        return any(p.namespace == "savsr" for p in core.plugins())
    except Exception:
        return hasattr(core, "savsr")


def ensure_namespace(core=None) -> None:
    """Make sure ``core.savsr`` exists, loading the native plugin if needed (vs.Error if impossible)."""
    core = core or vs.core
    if has_namespace(core):
        return
    tried = []
    for path in candidates():
        if not path.is_file():
            continue
        tried.append(str(path))
        try:
            core.std.LoadPlugin(str(path))
        except vs.Error as exc:
            if "already loaded" in str(exc):
                break
            continue
        if has_namespace(core):
            return
    if has_namespace(core):
        return
    raise vs.Error(
        "savsr.Upscale: the native part of vssavsr (libvssavsr.so, which provides core.savsr) is not "
        "installed in VapourSynth's plugin folder "
        f"({vs.get_plugin_dir()}) nor built in the source tree; install with 'pip install .' (not editable), "
        "or set VSSAVSR_PLUGIN to the built library" + (f" (tried: {', '.join(tried)})" if tried else "")
    )
