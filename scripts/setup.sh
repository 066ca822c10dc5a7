#!/usr/bin/env bash
# Set up (or refresh) the project's environment in .venv: a Python >= 3.12 virtual
# environment with vssavsr installed (including its native VapourSynth plugin), the dev
# extras, and ffmpeg. Safe to run again: it reuses what the first run installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VSSAVSR_VENV:-.venv}

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find_python() {
    local candidates=()
    [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
    candidates+=(python3.12 python3.13 python3.14)
    if command -v pyenv >/dev/null 2>&1 || [ -d "${PYENV_ROOT:-$HOME/.pyenv}/versions" ]; then
        local root=${PYENV_ROOT:-$HOME/.pyenv}
        for p in "$root"/versions/3.1[2-9]*/bin/python3; do [ -x "$p" ] && candidates+=("$p"); done
    fi
    candidates+=(python3)
    for c in "${candidates[@]}"; do
        local path
        path=$(command -v "$c" 2>/dev/null) || continue
        if python_ok "$path"; then echo "$path"; return 0; fi
    done
    return 1
}

if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
    if ! PY=$(find_python); then
        echo "setup: vssavsr needs Python >= 3.12 (the VapourSynth wheel requires it)." >&2
        echo "setup: none found. Install one (e.g. 'pyenv install 3.12' or Debian's python3.12)," >&2
        echo "setup: or point PYTHON at it: PYTHON=/path/to/python3.12 bash $0" >&2
        exit 1
    fi
    echo "setup: creating $VENV with $PY ($("$PY" --version))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ffmpeg with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
    else
        echo "setup: ffmpeg/ffprobe not found; install them (e.g. 'sudo apt-get install ffmpeg')." >&2
        exit 1
    fi
fi

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel
# Build requirements first, so the package (and its native shim) builds against the venv's
# VapourSynth headers without a second, isolated download.
"${PIP[@]}" install -q "vapoursynth>=73"
"${PIP[@]}" install -q --no-build-isolation ".[dev]"
# vspipe embeds the Python named in the user's VapourSynth config; point it at this venv.
"$VENV/bin/vapoursynth" config >/dev/null
"$VENV/bin/python" -c "import vssavsr, training; print('setup: vssavsr', vssavsr.__version__, 'ready in $VENV')"
