"""vssavsr: arbitrary-scale video super-resolution (SAVSR) for VapourSynth.

In a ``.vpy`` script: ``core.savsr.Upscale(clip, sx, sy)`` (no import needed once the
package is installed). From Python: ``vssavsr.upscale(clip, ...)``, the same function with the
same arguments (``vssavsr.plugin.upscale.upscale``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``upscale`` is looked up on first use, so that ``import vssavsr.model`` (training, exports) does not import
    # VapourSynth; it is the VapourSynth layer's function itself, with its signature and docs.
    if name == "upscale":
        from vssavsr.plugin.upscale import upscale

        return upscale
    raise AttributeError(f"module 'vssavsr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "upscale"])


def sample_clip_path() -> str:
    """Path of the short real sample clip shipped with the package (see samples/LICENSE.md)."""
    from importlib.resources import files

    return str(files("vssavsr") / "samples" / "bikes_320x136.mp4")


__all__ = ["__version__", "upscale", "sample_clip_path"]
