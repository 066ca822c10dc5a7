#!/usr/bin/env bash
# Build the Windows wheel on Linux: dist/vssavsr-<version>-py3-none-win_amd64.whl, holding the
# Python package, its weights and the native plugin cross-compiled with mingw-w64 as
# vapoursynth/plugins/libvssavsr.dll (where VapourSynth on Windows autoloads plugins from).
#
#   bash scripts/build-windows-wheel.sh [OUTDIR]     (default OUTDIR: dist)
#
# Needs the mingw-w64 cross compiler (Debian: apt-get install gcc-mingw-w64-x86-64) and the
# project's environment (scripts/setup.sh), whose VapourSynth package provides the headers.
# The Linux build (pip install ., build/lib*) is left untouched: this one lives in build/win_amd64.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
PY=${PYTHON:-.venv/bin/python}
CC=${VSSAVSR_CROSS_CC:-x86_64-w64-mingw32-gcc}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "build-windows-wheel: $CC not found; install it (Debian: apt-get install gcc-mingw-w64-x86-64)" >&2
    exit 1
fi
if [ ! -x "$PY" ] || ! "$PY" -c 'import vapoursynth, setuptools, wheel' 2>/dev/null; then
    echo "build-windows-wheel: $PY lacks vapoursynth/setuptools/wheel; run 'bash scripts/setup.sh' first" >&2
    echo "build-windows-wheel: (or point PYTHON at a Python that has them)" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
wheel="$OUT/vssavsr-$version-py3-none-win_amd64.whl"
rm -rf build/win_amd64 "$wheel"   # a clean build: nothing left over from an earlier one
VSSAVSR_PLUGIN_TARGET=win_amd64 "$PY" -m pip --disable-pip-version-check wheel -q \
    --no-build-isolation --no-deps -w "$OUT" . 2> >(grep -v "^WARNING: Location 'file:" >&2)
if [ ! -f "$wheel" ]; then
    echo "build-windows-wheel: pip finished but $wheel is missing" >&2
    exit 1
fi
echo "$wheel"
