"""The native plugin (shim.c): installed where VapourSynth autoloads it, internal functions guarded,
and a clear error (no crash) in a host process without Python."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import vapoursynth as vs

from vssavsr.plugin import native

core = vs.core


def test_core_has_the_savsr_namespace():
    native.ensure_namespace(core)
    names = {p.namespace: p for p in core.plugins()}
    assert "savsr" in names
    assert names["savsr"].identifier == native.PLUGIN_ID
    assert {"Upscale", "InternalArgs", "InternalReturn", "InternalFilter"} <= {f.name for f in names["savsr"].functions()}


def installed_plugin() -> Path | None:
    path = Path(vs.get_plugin_dir()) / "libvssavsr.so"
    return path if path.is_file() else None


def test_plugin_is_installed_in_the_autoload_folder():
    path = installed_plugin()
    if path is None:
        pytest.skip("vssavsr is not installed with 'pip install .' in this environment (no libvssavsr.so in "
                    f"{vs.get_plugin_dir()})")
    # A fresh Python process, nothing imported but vapoursynth: core.savsr is there.
    code = "from vapoursynth import core; print(core.savsr.Upscale.name)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Upscale"


def test_internal_functions_refuse_to_be_called_from_scripts():
    native.ensure_namespace(core)
    with pytest.raises(vs.Error, match="internal function"):
        core.savsr.InternalArgs(key=123456789)
    with pytest.raises(vs.Error, match="internal function"):
        core.savsr.InternalFilter(core.std.BlankClip(format=vs.RGB24), width=8, height=8, handle=1)


HOST_C = textwrap.dedent(
    r"""
    #include <stdio.h>
    #include <string.h>
    #include "VapourSynth4.h"
    int main(int argc, char **argv) {
        const VSAPI *vsapi = getVapourSynthAPI(VAPOURSYNTH_API_VERSION);
        if (!vsapi) { printf("no api\n"); return 2; }
        VSCore *core = vsapi->createCore(ccfDisableAutoLoading);
        VSMap *args = vsapi->createMap();
        vsapi->mapSetData(args, "path", argv[1], -1, dtUtf8, maReplace);
        VSMap *r = vsapi->invoke(vsapi->getPluginByID("com.vapoursynth.std", core), "LoadPlugin", args);
        if (vsapi->mapGetError(r)) { printf("load: %s\n", vsapi->mapGetError(r)); return 3; }
        vsapi->freeMap(r);
        vsapi->clearMap(args);
        r = vsapi->invoke(vsapi->getPluginByID("com.vapoursynth.std", core), "BlankClip", args);
        VSNode *clip = vsapi->mapGetNode(r, "clip", 0, NULL);
        vsapi->freeMap(r);
        vsapi->mapConsumeNode(args, "clip", clip, maReplace);
        vsapi->mapSetFloat(args, "sx", 2.0, maReplace);
        r = vsapi->invoke(vsapi->getPluginByNamespace("savsr", core), "Upscale", args);
        const char *err = vsapi->mapGetError(r);
        printf("%s\n", err ? err : "NO ERROR");
        vsapi->freeMap(r);
        vsapi->freeMap(args);
        vsapi->freeCore(core);
        return err ? 0 : 1;
    }
    """
)


def test_host_without_python_gets_a_clear_error(tmp_path):
    lib = Path(vs.__file__).parent / "libvapoursynth.so.4"
    plugin = installed_plugin() or next((p for p in native.candidates() if p.is_file()), None)
    if shutil.which("gcc") is None or not lib.is_file() or plugin is None:
        pytest.skip("needs gcc, the wheel's libvapoursynth.so.4 and a built libvssavsr.so")
    src = tmp_path / "host.c"
    src.write_text(HOST_C)
    exe = tmp_path / "host"
    subprocess.run(
        ["gcc", str(src), "-o", str(exe), f"-I{vs.get_include()}", f"-L{lib.parent}", "-l:libvapoursynth.so.4",
         f"-Wl,-rpath,{lib.parent}"],
        check=True, capture_output=True, timeout=120,
    )
    res = subprocess.run([str(exe), str(plugin)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert "no running Python interpreter" in res.stdout
