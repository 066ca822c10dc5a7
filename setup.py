"""Build of vssavsr's native VapourSynth plugin (everything else is in pyproject.toml).

The plugin (vssavsr/plugin/shim.c) is compiled against VapourSynth's headers
(``vapoursynth.get_include()``) and installed as ``vapoursynth/plugins/libvssavsr.so`` in
site-packages, the folder VapourSynth autoloads plugins from; that is what makes
``core.savsr`` exist in any script without an import. It is not a Python extension module:
it does not link libpython (it finds the Python C API in the host process at run time), so
one build works with any Python 3 that runs VapourSynth.

Install with ``pip install .`` (a regular, non-editable install). An editable install
(``pip install -e .``) builds the plugin into vssavsr/plugin/ instead, because an editable
install cannot place files into VapourSynth's plugin folder: ``vssavsr.upscale()`` then loads
it by itself, but ``core.savsr`` is not autoloaded in scripts that do not import vssavsr.
"""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

PLUGIN_EXT = "vapoursynth.plugins.libvssavsr"

# Cross-build target (empty: build for this machine, as usual) and its compiler.
TARGET = os.environ.get("VSSAVSR_PLUGIN_TARGET", "")
CROSS_COMPILERS = {"win_amd64": "x86_64-w64-mingw32-gcc"}
if TARGET and TARGET not in CROSS_COMPILERS:
    sys.exit(f"vssavsr: VSSAVSR_PLUGIN_TARGET={TARGET!r} is not a known target (known: {', '.join(CROSS_COMPILERS)})")
# -static-libgcc: the DLL needs only KERNEL32.dll and msvcrt.dll, which every Windows has.
# --no-insert-timestamp: the same source gives the same DLL.
MINGW_FLAGS = ["-O2", "-std=c11", "-Wall", "-shared", "-static-libgcc", "-s", "-Wl,--no-insert-timestamp"]


def vapoursynth_include() -> str:
    override = os.environ.get("VSSAVSR_VS_INCLUDE")
    if override:
        return override
    try:
        import vapoursynth
    except Exception as exc:  # pragma: no cover - build environment problem
        sys.exit(
            "vssavsr: building the native plugin needs VapourSynth's headers, taken from the "
            f"installed 'vapoursynth' Python package, which cannot be imported here ({exc}). "
            "Install it first (pip install 'vapoursynth>=73') and build with "
            "--no-build-isolation, or set VSSAVSR_VS_INCLUDE to the folder holding VapourSynth4.h."
        )
    return vapoursynth.get_include()


class BuildPlugin(build_ext):
    """build_ext that names the plugin plainly (libvssavsr.so, no Python ABI tag)."""

    def get_ext_filename(self, fullname):
        # Called with the full dotted name or only its last part, depending on the caller.
        if fullname in (PLUGIN_EXT, PLUGIN_EXT.rsplit(".", 1)[1]):
            name = os.path.join(*fullname.split("."))
            windows = TARGET == "win_amd64" or (not TARGET and sys.platform == "win32")
            return name + (".dll" if windows else ".dylib" if sys.platform == "darwin" else ".so")
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        if ext.name == PLUGIN_EXT:
            return ["VapourSynthPluginInit2"]
        return super().get_export_symbols(ext)

    def copy_extensions_to_source(self):
        """In-place builds (``build_ext --inplace``, editable installs): the plugin goes to
        vssavsr/plugin/, where ``vssavsr.plugin.native`` finds it, not into a ``vapoursynth/``
        folder in the source tree."""
        plugin = [e for e in self.extensions if e.name == PLUGIN_EXT]
        others = [e for e in self.extensions if e.name != PLUGIN_EXT]
        for _ in plugin:
            built = os.path.join(self.build_lib, self.get_ext_filename(PLUGIN_EXT))
            here = os.path.dirname(os.path.abspath(__file__))
            self.copy_file(built, os.path.join(here, "vssavsr", "plugin", os.path.basename(built)), level=self.verbose)
        saved, self.extensions = self.extensions, others
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = saved

    def build_extension(self, ext):
        if ext.name == PLUGIN_EXT:
            ext.include_dirs = [vapoursynth_include()] + list(ext.include_dirs)
            if TARGET:
                return self.cross_build(ext)
        super().build_extension(ext)

    def cross_build(self, ext):
        compiler = os.environ.get("VSSAVSR_CROSS_CC", CROSS_COMPILERS[TARGET])
        if shutil.which(compiler) is None:
            sys.exit(
                f"vssavsr: cross-building the plugin for {TARGET} needs {compiler}, which is not on PATH; "
                "on Debian: apt-get install gcc-mingw-w64-x86-64 (or set VSSAVSR_CROSS_CC)"
            )
        out = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        includes = [f"-I{d}" for d in ext.include_dirs]
        cmd = [compiler, *MINGW_FLAGS, *includes, *ext.sources, "-o", out]
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)


class BdistWheel(bdist_wheel):
    """Cross-builds are tagged for their target: py3-none-<target> (see the module docstring)."""

    def get_tag(self):
        if TARGET:
            return "py3", "none", TARGET
        return super().get_tag()


plugin = Extension(
    PLUGIN_EXT,
    sources=["vssavsr/plugin/shim.c"],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-fvisibility=hidden"] if sys.platform != "win32" else [],
    libraries=["dl", "pthread"] if sys.platform.startswith("linux") else [],
    py_limited_api=False,
)

setup(
    ext_modules=[plugin],
    cmdclass={"build_ext": BuildPlugin, "bdist_wheel": BdistWheel},
    # A cross-build must never pick up (or leave behind) this machine's build of the plugin.
    options={"build": {"build_base": os.path.join("build", TARGET)}} if TARGET else {},
)
