"""The Windows build: the plugin DLL cross-compiled with mingw-w64, the win_amd64 wheel that
scripts/build-windows-wheel.sh makes, and that DLL run for real under Wine, inside a small
VapourSynth host without Python (tests/native/wine_host.c) and the Windows wheel's
libvapoursynth.dll.

Needs x86_64-w64-mingw32-gcc (Debian gcc-mingw-w64-x86-64) and, for the Wine tests, wine64 and
the Windows VapourSynth wheel, fetched from PyPI with pip at test time into the cache folder
($VSSAVSR_TEST_CACHE, default ~/.cache/vssavsr-tests, which also holds the Wine prefix) unless
$VSSAVSR_VS_WIN_WHEEL names a copy. Each is skipped, with the reason, when what it needs is missing.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import vapoursynth as vs

from vssavsr.plugin import native

ROOT = Path(__file__).resolve().parents[1]
NATIVE = Path(__file__).resolve().parent / "native"
MINGW_CC = os.environ.get("VSSAVSR_CROSS_CC", "x86_64-w64-mingw32-gcc")
OBJDUMP = "x86_64-w64-mingw32-objdump"
PLUGIN_IN_WHEEL = "vapoursynth/plugins/libvssavsr.dll"
# What a Python-less host must be told (shim.c's NO_PYTHON_MSG).
NEEDS_PYTHON = "no running Python interpreter in this process"
# The DLLs every Windows has; the plugin must need nothing else (no libgcc, no pthreads, no Python).
SYSTEM_DLLS = {"kernel32.dll", "msvcrt.dll"}
WINE_TIMEOUT = 600  # a first wineboot on a busy machine can take minutes


def cache_dir() -> Path:
    return Path(os.environ.get("VSSAVSR_TEST_CACHE") or Path.home() / ".cache" / "vssavsr-tests")


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def need_mingw() -> None:
    if shutil.which(MINGW_CC) is None:
        pytest.skip(f"{MINGW_CC} not found: install the mingw-w64 cross compiler "
                    "(Debian: apt-get install gcc-mingw-w64-x86-64; .ci/run does)")


def mingw(*args: str | Path) -> None:
    res = subprocess.run([MINGW_CC, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------------------------
# The wheel and the DLL in it


@pytest.fixture(scope="module")
def windows_wheel(tmp_path_factory) -> Path:
    need_mingw()
    out = tmp_path_factory.mktemp("windows-wheel")
    res = subprocess.run(
        ["bash", "scripts/build-windows-wheel.sh", str(out)],
        cwd=ROOT, env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    wheels = sorted(out.glob("*.whl"))
    assert [w.name for w in wheels] == [Path(res.stdout.strip().splitlines()[-1]).name]
    return wheels[0]


@pytest.fixture(scope="module")
def plugin_dll(windows_wheel, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "libvssavsr.dll"
    with zipfile.ZipFile(windows_wheel) as z:
        path.write_bytes(z.read(PLUGIN_IN_WHEEL))
    return path


def pe_description(dll: Path) -> tuple[str, set[str], set[str]]:
    """(file format, exported names, imported DLL names) as x86_64-w64-mingw32-objdump -p reads them."""
    if shutil.which(OBJDUMP) is None:
        pytest.skip(f"{OBJDUMP} not found (Debian: apt-get install binutils-mingw-w64-x86-64)")
    res = subprocess.run([OBJDUMP, "-p", str(dll)], capture_output=True, text=True, timeout=60, check=True)
    fmt = re.search(r"file format (\S+)", res.stdout).group(1)
    imports = set(re.findall(r"DLL Name: (\S+)", res.stdout))
    table = res.stdout.split("[Ordinal/Name Pointer] Table", 1)
    exports = set(re.findall(r"^\s*\[\s*\d+\]\s+(\w+)\s*$", table[1], re.M)) if len(table) == 2 else set()
    return fmt, exports, imports


def test_dll_exports_the_plugin_entry_point_and_needs_only_system_dlls(plugin_dll):
    fmt, exports, imports = pe_description(plugin_dll)
    assert fmt == "pei-x86-64"
    assert exports == {"VapourSynthPluginInit2"}
    # Python is found at run time, never linked; nothing from the mingw toolchain has to ship.
    assert {name.lower() for name in imports} <= SYSTEM_DLLS, imports


def test_wheel_tags_and_contents(windows_wheel):
    version = project_version()
    # py3-none: the DLL links no libpython, so no Python ABI constrains it (Requires-Python does).
    assert windows_wheel.name == f"vssavsr-{version}-py3-none-win_amd64.whl"
    with zipfile.ZipFile(windows_wheel) as z:
        names = set(z.namelist())
        info = f"vssavsr-{version}.dist-info"
        wheel_meta = z.read(f"{info}/WHEEL").decode()
        metadata = z.read(f"{info}/METADATA").decode()
        record = list(csv.reader(io.StringIO(z.read(f"{info}/RECORD").decode())))
        contents = {name: z.read(name) for name in names}

    assert re.findall(r"^Tag: (.+)$", wheel_meta, re.M) == ["py3-none-win_amd64"]
    assert "Root-Is-Purelib: false" in wheel_meta
    assert f"\nVersion: {version}\n" in metadata
    assert "Requires-Python: >=3.12" in metadata

    # The plugin where VapourSynth on Windows autoloads it, and no Linux build of it anywhere.
    assert PLUGIN_IN_WHEEL in names
    assert [n for n in names if n.startswith("vapoursynth/")] == [PLUGIN_IN_WHEEL]
    assert not [n for n in names if n.endswith((".so", ".dylib", ".pyd"))]
    # The whole Python package, and the weights byte for byte.
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vssavsr").rglob("*.py") if "__pycache__" not in p.parts}
    assert package <= names, sorted(package - names)
    weights = sorted((ROOT / "vssavsr" / "weights").glob("*.safetensors"))
    assert weights, "no shipped weights in the source tree"
    for path in weights:
        assert contents[path.relative_to(ROOT).as_posix()] == path.read_bytes()

    # RECORD lists every file with its right hash.
    recorded = {row[0]: row[1] for row in record if row}
    assert set(recorded) == names
    for name, digest in recorded.items():
        if name.endswith("RECORD"):
            continue
        algo, _, value = digest.partition("=")
        expected = base64.urlsafe_b64encode(hashlib.new(algo, contents[name]).digest()).rstrip(b"=").decode()
        assert value == expected, name


# ------------------------------------------------------------------------------------------------
# Under Wine


def wine_binary() -> str | None:
    override = os.environ.get("VSSAVSR_WINE")
    if override:
        return override if os.access(override, os.X_OK) else None
    # Debian's /usr/bin/wine is a wrapper that warns about a missing wine32; the loader itself is this.
    if os.access("/usr/lib/wine/wine64", os.X_OK):
        return "/usr/lib/wine/wine64"
    return shutil.which("wine64") or shutil.which("wine")


def windows_vapoursynth_wheel() -> Path:
    """The Windows VapourSynth wheel of the installed version: $VSSAVSR_VS_WIN_WHEEL, the cache, or PyPI."""
    override = os.environ.get("VSSAVSR_VS_WIN_WHEEL")
    if override:
        return Path(override)
    version = importlib.metadata.version("vapoursynth")
    folder = cache_dir() / "wheels"
    found = sorted(folder.glob(f"vapoursynth-{version}-*win_amd64.whl"))
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"vapoursynth=={version}", "--platform", "win_amd64",
         "--only-binary=:all:", "--python-version", "312", "--no-deps", "-d", str(folder)],
        capture_output=True, text=True, timeout=600,
    )
    found = sorted(folder.glob(f"vapoursynth-{version}-*win_amd64.whl"))
    if res.returncode != 0 or not found:
        tail = " ".join((res.stderr or res.stdout).strip().splitlines()[-2:])
        pytest.skip(f"could not download the Windows VapourSynth {version} wheel from PyPI "
                    f"(set VSSAVSR_VS_WIN_WHEEL to a copy): {tail}")
    return found[-1]


class Wine:
    def __init__(self, binary: str, prefix: Path, workdir: Path):
        self.binary, self.prefix, self.workdir = binary, prefix, workdir
        self.env = dict(os.environ, WINEPREFIX=str(prefix), WINEDEBUG="-all",
                        # no Mono / Gecko installer prompts during wineboot
                        WINEDLLOVERRIDES="mscoree,mshtml=")
        for var in ("DISPLAY", "WAYLAND_DISPLAY"):
            self.env.pop(var, None)

    def run(self, *args: str, timeout: float = WINE_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, errors="replace", timeout=timeout)

    def boot(self) -> None:
        """Create the prefix once (the slow first start of Wine), under a lock for parallel sessions."""
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        with open(self.prefix.parent / "wineprefix.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (self.prefix / "system.reg").is_file():
                return
            res = self.run("wineboot", "--init")
            assert (self.prefix / "system.reg").is_file(), f"wineboot failed ({res.returncode}): {res.stderr[-2000:]}"

    def shut_down(self) -> None:
        """Wait for this prefix's wineserver (started by our runs) to exit; stop it if it lingers."""
        server = shutil.which("wineserver") or "/usr/lib/wine/wineserver64"
        if not os.access(server, os.X_OK):
            return
        try:
            subprocess.run([server, "-w"], env=self.env, timeout=30, capture_output=True)
        except subprocess.TimeoutExpired:
            subprocess.run([server, "-k"], env=self.env, timeout=30, capture_output=True)


@pytest.fixture(scope="module")
def wine(plugin_dll, tmp_path_factory):
    binary = wine_binary()
    if binary is None:
        pytest.skip("wine64 not found: install it (Debian: apt-get install wine64; .ci/run does) "
                    "to run the plugin DLL under Wine")
    wheel = windows_vapoursynth_wheel()
    workdir = tmp_path_factory.mktemp("wine")
    with zipfile.ZipFile(wheel) as z:
        runtime = [n for n in z.namelist() if re.fullmatch(r"vapoursynth/libvapoursynth(filters\w*)?\.dll", n)]
        assert "vapoursynth/libvapoursynth.dll" in runtime, f"{wheel.name} has no vapoursynth/libvapoursynth.dll"
        z.extractall(workdir, members=runtime)
    shutil.copy(plugin_dll, workdir / "libvssavsr.dll")
    mingw("-O2", "-std=c11", "-Wall", f"-I{vs.get_include()}", NATIVE / "wine_host.c", "-o", workdir / "wine_host.exe")
    # A stand-in Python runtime under a name no real Python has: found only through the module list.
    mingw("-O2", "-std=c11", "-Wall", "-shared", "-static-libgcc", NATIVE / "fake_python.c", "-o", workdir / "python399.dll")
    w = Wine(binary, cache_dir() / "wineprefix", workdir)
    w.boot()
    yield w
    w.shut_down()


def host_run(wine: Wine, *extra: str) -> str:
    res = wine.run("wine_host.exe", r"vapoursynth\libvapoursynth.dll", "libvssavsr.dll", *extra)
    out = res.stdout
    assert res.returncode == 0 and "done, 0 failure(s)" in out, (res.returncode, out, res.stderr[-3000:])
    return out


def linux_functions() -> dict[str, str]:
    native.ensure_namespace(vs.core)
    plugin = next(p for p in vs.core.plugins() if p.namespace == "savsr")
    return {f.name: f.signature for f in plugin.functions()}


def test_wine_host_without_python_gets_the_needs_python_error(wine):
    out = host_run(wine)
    assert re.search(r"^core R\d+ API 4\.\d+$", out, re.M), out
    assert "plugin com.vssavsr.savsr savsr" in out
    # The DLL registers exactly what the Linux plugin registers.
    registered = dict(re.findall(r"^function (\w+) (\S*)$", out, re.M))
    assert registered == linux_functions()
    errors = dict(re.findall(r"^error (\w+): (.*)$", out, re.M))
    assert errors["Upscale"].startswith(f"savsr.Upscale: {NEEDS_PYTHON}")
    assert "with the vssavsr package installed in that Python" in errors["Upscale"]
    # The model filter's frames refuse in the same words, and freeing it is safe.
    assert "filter 128x96 10 frames" in out
    assert errors["getFrame"].startswith(f"savsr.Upscale: frame 0: {NEEDS_PYTHON}")


def test_wine_host_finds_a_python_runtime_through_the_module_list(wine):
    out = host_run(wine, "python399.dll")
    errors = dict(re.findall(r"^error (\w+): (.*)$", out, re.M))
    # The plugin found python399.dll, resolved its entry points, took the GIL and asked it for the bridge.
    refused = "cannot import the Python package vssavsr (fake Python: import of vssavsr.plugin._bridge refused)"
    assert errors["Upscale"].startswith(refused), errors
    assert errors["getFrame"].startswith(refused), errors
    report = dict(re.findall(r"(\w+)=(\S+)", re.search(r"^python (.*)$", out, re.M).group(1)))
    assert report["last_import"] == "vssavsr.plugin._bridge"
    assert int(report["imports"]) >= 2 and report["gil_taken"] == report["imports"]
    assert report["gil_depth"] == "0", report
