#!/usr/bin/env bash
# Set up the environment and run the main job: upscale the bundled sample clip (real
# camera footage, 320x136, 75 frames) x2 with the bundled checkpoint through
# vspipe | ffmpeg, and write a playable H.264 video.
#   bash scripts/demo.sh [INPUT_VIDEO] [SCALE] [OUTPUT]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SRC=${1:-$(.venv/bin/python -c "import vssavsr; print(vssavsr.sample_clip_path())")}
SCALE=${2:-2}
OUT=${3:-out/demo_x${SCALE}.mkv}
mkdir -p "$(dirname "$OUT")"
echo "demo: upscaling $SRC by x$SCALE"
.venv/bin/vspipe --info -a src="$SRC" -a scale="$SCALE" scripts/demo.vpy
.venv/bin/vspipe -p -c y4m -a src="$SRC" -a scale="$SCALE" scripts/demo.vpy - \
    | ffmpeg -v error -stats -y -i - -c:v libx264 -crf 16 -preset medium -pix_fmt yuv420p "$OUT"
echo "demo: wrote $(realpath "$OUT")"
ffprobe -v error -select_streams v:0 -count_frames \
    -show_entries stream=codec_name,width,height,nb_read_frames -of default=noprint_wrappers=1 "$OUT"
