"""vssavsr: arbitrary-scale video super-resolution (SAVSR) for VapourSynth.

In a ``.vpy`` script: ``core.savsr.Upscale(clip, sx, sy)`` (no import needed once the
package is installed). From Python: ``vssavsr.upscale(clip, ...)``.
"""

__version__ = "0.1.0"


def upscale(clip, *args, **kwargs):
    """Upscale ``clip`` with SAVSR; same arguments as ``core.savsr.Upscale``."""
    from vssavsr.plugin.upscale import upscale as _upscale

    return _upscale(clip, *args, **kwargs)


def sample_clip_path() -> str:
    """Path of the short real sample clip shipped with the package (see samples/LICENSE.md)."""
    from importlib.resources import files

    return str(files("vssavsr") / "samples" / "bikes_320x136.mp4")


__all__ = ["__version__", "upscale", "sample_clip_path"]
