#!/usr/bin/env bash
# Train the full SAVSR network on a lent GPU machine (device tool), detached, within one session's device time.
# Runs THERE, in the repository root of the copied working tree (gpu_carry/ carried beside it); see training/GPU.md.
#
#   bash scripts/gpu/train.sh start  [MINUTES] [WATCH_S]  launch (setsid), watch WATCH_S s, copy results to $OUT
#   bash scripts/gpu/train.sh poll   [WATCH_S]            watch up to WATCH_S s (returns when done), copy to $OUT
#   bash scripts/gpu/train.sh finish [WAIT_S]             wait up to WAIT_S s for the end, else stop it (SIGTERM:
#                                                         it saves), export, copy the final results to $OUT
#   bash scripts/gpu/train.sh state  K                    copy part set K (0, 1, 2, ...) of the final training
#                                                         state to $OUT (exact resume later; optional)
#   bash scripts/gpu/train.sh status                      one progress line
#   bash scripts/gpu/train.sh assemble DIR... -o RUN_DIR  HERE (CPU side): join fetched parts, check SHA-256
#
# MINUTES (default 23): wall-clock budget from launch to the final export. The driver (a setsid'd copy of this
# script) trains in two phases: CAL_ITERS (300) iterations of the config as is (compiling included; CAL_MINUTES,
# 6, at most), then it measures the iteration rate in log.csv and resumes with train.iterations, the cosine period,
# the scale curriculum (none stays none) and the checkpoint interval resized to the time left before the deadline (--max-minutes
# stays the hard stop of each phase). CALIBRATE=0: one phase with the config's iterations and --max-minutes.
#
# What comes back ($OUT; the device tool returns at most 8 files of 16 MiB, 64 MiB together):
#   start/poll: ema-fp16.safetensors.part-aa/-ab (EMA of the newest saved state, split in 15 MiB parts),
#               log.csv, progress.txt, train.log (tail), config.yaml, SHA256SUMS
#   finish (or a poll that sees the run done): ema-fp32.safetensors.part-aa..ac instead (final EMA, fp32)
#   state K:    last.pt.part-* numbers 4K..4K+3 (the whole state, ~185 MB with Adam's moments, is 12 parts:
#               K = 0, 1, 2), SHA256SUMS
#
# Environment: GPU_RUN (work folder, default /tmp/vssavsr-gpu), CONFIG (gpu-full), DATA (packed data, default
# gpu_carry), INIT (a .safetensors checkpoint to start from, e.g. an earlier run's fp16 EMA carried in gpu_init/;
# fresh optimizer and schedule), PYTHON (interpreter), EXTRA_SET (more --set overrides, space-separated:
# KEY=VALUE without spaces; they are stored in the state, so phase 2 keeps them), CALIBRATE (1), CAL_ITERS (300), CAL_MINUTES (6),
# EXPORT_MARGIN_S (30), WATCH_EVERY (60), OUT (where results go; the device tool sets it).
set -uo pipefail

MODE=${1:-status}
shift || true
HERE=$(cd "$(dirname "$0")/../.." && pwd)
GPU_RUN=${GPU_RUN:-/tmp/vssavsr-gpu}
CONFIG=${CONFIG:-gpu-full}
DATA=${DATA:-gpu_carry}
CALIBRATE=${CALIBRATE:-1}
CAL_ITERS=${CAL_ITERS:-300}
CAL_MINUTES=${CAL_MINUTES:-6}
EXTRA_SET=${EXTRA_SET:-}
OUT=${OUT:-$GPU_RUN/out}
REPO=$GPU_RUN/repo          # a snapshot of the code and data: immune to the tool re-sending the tree
RUN=$GPU_RUN/run            # training's --out
EXP=$GPU_RUN/export
PART=15M                    # part size (< the 16 MiB per-file limit)

log() { echo "[$(date +%H:%M:%S)] $*"; }
final_rc() {  # 1 when the driver ended with an error, else 0 (also while it runs)
  if [ -f "$GPU_RUN/DONE" ] && ! grep -q '^rc=0 ' "$GPU_RUN/DONE"; then return 1; fi
  if [ ! -f "$GPU_RUN/DONE" ] && ! driver_alive; then return 1; fi
  return 0
}
die() { echo "scripts/gpu/train.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
# python: the machine's own (torch preinstalled: /opt/torch/.venv on the device image), else one made here
# ---------------------------------------------------------------------------------------------------------------
py_ok() {  # $1: interpreter; Python >= 3.12 with what training needs
  "$1" - <<'EOF' >/dev/null 2>&1
import sys
assert sys.version_info >= (3, 12)
import torch, numpy, yaml, PIL, safetensors, tqdm  # noqa: F401
EOF
}

pick_python() {
  if [ -f "$GPU_RUN/python" ] && py_ok "$(cat "$GPU_RUN/python")"; then cat "$GPU_RUN/python"; return 0; fi
  local c
  for c in ${PYTHON:-} /opt/torch/.venv/bin/python3 python3 python; do
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && py_ok "$c"; then command -v "$c"; return 0; fi
  done
  # No suitable one. Nothing can be downloaded there: a venv over a Python >= 3.12 that sees the system's packages,
  # plus wheels carried in .whl/ (training/GPU.md says how to fetch them), is all that can be made.
  for c in python3.13 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      "$c" -m venv --system-site-packages "$GPU_RUN/venv" >&2 || break
      if [ -d "$HERE/.whl" ]; then
        "$GPU_RUN/venv/bin/python" -m pip install -q --no-index --no-deps --no-compile "$HERE"/.whl/*.whl >&2 || true
      fi
      if py_ok "$GPU_RUN/venv/bin/python"; then echo "$GPU_RUN/venv/bin/python"; return 0; fi
      break
    fi
  done
  return 1
}

# ---------------------------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------------------------
driver_alive() { [ -f "$GPU_RUN/driver.pid" ] && kill -0 "$(cat "$GPU_RUN/driver.pid")" 2>/dev/null; }

progress_line() {  # one line: phase, iteration/total, loss, rate, data time, GPU, time left
  local py; py=$(cat "$GPU_RUN/python" 2>/dev/null || echo python3)
  local gpu=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    gpu=$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 |
          awk -F', ' '{printf "gpu %s%% %.1f GiB", $1, $2/1024}')
  fi
  "$py" - "$RUN/log.csv" "$GPU_RUN" "$gpu" <<'EOF'
import csv, os, sys, time
log, run, gpu = sys.argv[1], sys.argv[2], sys.argv[3]
def read(name, default=""):
    try:
        return open(os.path.join(run, name)).read().strip()
    except OSError:
        return default
phase, total = read("phase", "?"), read("total", "?")
left = ""
dl = read("deadline")
if dl:
    left = f"{(float(dl) - time.time()) / 60:+.1f} min to deadline"
rows = []
if os.path.isfile(log):
    with open(log) as f:
        rows = list(csv.DictReader(f))
if not rows:
    print(f"phase {phase}: no log rows yet (data loading / compiling) {gpu} {left}".strip())
    sys.exit()
r = rows[-1]
recent = rows[-10:]
loss = sum(float(x["loss"]) for x in recent) / len(recent)
print(f"phase {phase}: it {r['iteration']}/{total} loss {loss:.5f} lr {float(r['lr']):.2e} x{float(r['sy']):g}/{float(r['sx']):g} "
      f"{float(r['it_per_s']):.2f} it/s data {float(r['data_s']) * 1000:.0f} ms/it  {gpu}  {left}")
EOF
}

watch() {  # $1: seconds; print a line a minute; return early when the driver is gone
  local until=$(( $(date +%s) + ${1:-0} )) next=0
  while :; do
    local now; now=$(date +%s)
    if [ "$now" -ge "$next" ]; then log "$(progress_line)"; next=$(( now + ${WATCH_EVERY:-60} )); fi
    driver_alive || break
    [ "$now" -ge "$until" ] && break
    sleep 2
  done
  if ! driver_alive; then
    if [ -f "$GPU_RUN/DONE" ]; then
      log "driver done: $(cat "$GPU_RUN/DONE")"
      grep -q '^rc=0 ' "$GPU_RUN/DONE" || { echo "last lines of train.log:"; tail -n 40 "$GPU_RUN/train.log"; }
    else log "DRIVER IS NOT RUNNING and wrote no DONE: last lines of train.log:"; tail -n 40 "$GPU_RUN/train.log" 2>/dev/null
    fi
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# results into $OUT
# ---------------------------------------------------------------------------------------------------------------
export_ema() {  # $1: fp16|fp32 -> $EXP/ema-$1.safetensors from the newest state (skipped if up to date)
  local dtype=$1 py; py=$(cat "$GPU_RUN/python")
  [ -e "$RUN/last.pt" ] || { log "no saved state yet"; return 1; }
  local state; state=$(readlink -f "$RUN/last.pt")
  local dst="$EXP/ema-$dtype.safetensors"
  mkdir -p "$EXP"
  if [ -f "$dst" ] && [ "$(cat "$dst.from" 2>/dev/null)" = "$state" ]; then return 0; fi
  (cd "$REPO" && OMP_NUM_THREADS=4 PYTHONPATH="$REPO" "$py" -m training.export "$state" -o "$dst.tmp.safetensors" \
      --dtype "$dtype" --notes "scripts/gpu/train.sh on $(hostname), $(date -u +%FT%TZ)") >>"$GPU_RUN/export.log" 2>&1 \
    || { log "export failed: $(tail -n 3 "$GPU_RUN/export.log")"; return 1; }
  mv "$dst.tmp.safetensors" "$dst"
  echo "$state" >"$dst.from"
}

copy_out() {  # $1: fp16 (progress) | fp32 (final)
  local dtype=$1
  mkdir -p "$OUT"
  rm -f "$OUT"/ema-*.part-* "$OUT/SHA256SUMS"
  export_ema "$dtype" || true
  local f="$EXP/ema-$dtype.safetensors" sums=""
  if [ -f "$f" ]; then
    (cd "$OUT" && split -b "$PART" -a 2 "$f" "ema-$dtype.safetensors.part-")
    sums="$(cd "$EXP" && sha256sum "ema-$dtype.safetensors")"
  fi
  [ -f "$RUN/log.csv" ] && cp "$RUN/log.csv" "$OUT/"
  [ -f "$RUN/config.yaml" ] && cp "$RUN/config.yaml" "$OUT/"
  tail -n 300 "$GPU_RUN/train.log" >"$OUT/train.log" 2>/dev/null || true
  {
    echo "$sums"
    (cd "$OUT" && sha256sum ema-*.part-* 2>/dev/null)
  } | sed '/^$/d' >"$OUT/SHA256SUMS"
  {
    echo "time: $(date -u +%FT%TZ)  host: $(hostname)"
    echo "progress: $(progress_line)"
    echo "state: $(readlink -f "$RUN/last.pt" 2>/dev/null) ($(du -b "$(readlink -f "$RUN/last.pt" 2>/dev/null)" 2>/dev/null | cut -f1) bytes)"
    echo "ema: $f from $(cat "$f.from" 2>/dev/null)"
    echo "driver: $(cat "$GPU_RUN/DONE" 2>/dev/null || (driver_alive && echo running) || echo 'not running, no DONE')"
    [ -f "$GPU_RUN/calibration" ] && echo "calibration: $(cat "$GPU_RUN/calibration")"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  } >"$OUT/progress.txt"
  log "copied to \$OUT: $(cd "$OUT" && ls | tr '\n' ' ')($(du -sh "$OUT" | cut -f1))"
}

# ---------------------------------------------------------------------------------------------------------------
# the driver (detached)
# ---------------------------------------------------------------------------------------------------------------
train_phase() {  # $1: phase name; rest: arguments of training.train. Runs in the background, waits, returns rc
  local name=$1; shift
  echo "$name" >"$GPU_RUN/phase"
  log "phase $name: training.train $*" >>"$GPU_RUN/train.log"
  (cd "$REPO" && exec env PYTHONPATH="$REPO" PYTHONUNBUFFERED=1 "$PY" -m training.train --no-progress "$@") \
    >>"$GPU_RUN/train.log" 2>&1 &
  echo $! >"$GPU_RUN/train.pid"
  wait $!
  local rc=$?
  rm -f "$GPU_RUN/train.pid"
  return $rc
}

drive() {
  PY=$(cat "$GPU_RUN/python")
  local deadline; deadline=$(cat "$GPU_RUN/deadline")
  local margin=${EXPORT_MARGIN_S:-30}   # seconds kept after training for the final export
  local start_s; start_s=$(date +%s)
  local rc=0
  echo $$ >"$GPU_RUN/driver.pid"
  local -a extra=() setargs=()
  [ -n "$EXTRA_SET" ] && read -r -a extra <<<"$EXTRA_SET"
  [ ${#extra[@]} -gt 0 ] && setargs=(--set "${extra[@]}")
  local first_min stop_at=()
  first_min=$(awk -v d="$deadline" -v n="$start_s" -v m="$margin" 'BEGIN { printf "%.3f", (d - n - m) / 60 }')
  if [ "$CALIBRATE" = 1 ]; then  # phase 1: CAL_ITERS iterations (whatever compiling takes), CAL_MINUTES at most
    first_min=$(awk -v a="$first_min" -v b="$CAL_MINUTES" 'BEGIN { print (a < b) ? a : b }')
    stop_at=(--stop-at "$CAL_ITERS")
  fi
  "$PY" -c "import sys; sys.path.insert(0, '$REPO'); from training.config import load_config, apply_overrides; \
c = apply_overrides(load_config('$CONFIG'), sys.argv[1:]); print(c['train']['iterations'])" "${extra[@]}" \
    >"$GPU_RUN/total" 2>>"$GPU_RUN/train.log"
  local -a init=()
  [ -f "$GPU_RUN/init.safetensors" ] && init=(--init "$GPU_RUN/init.safetensors")
  train_phase 1 --config "$CONFIG" --out "$RUN" --max-minutes "$first_min" "${stop_at[@]}" "${init[@]}" "${setargs[@]}" \
    || rc=$?
  if [ $rc = 0 ] && [ "$CALIBRATE" = 1 ] && [ ! -f "$GPU_RUN/STOP" ]; then
    # the rate from log.csv (rows of the last two thirds of phase 1: compiling and warm-up left out), then the run
    # resized to the time left before the deadline (biased up: the cosine tail is flat, an early end wastes the GPU)
    local plan
    plan=$("$PY" - "$RUN" "$deadline" "$margin" "$start_s" <<'EOF'
import csv, sys, time
import torch
run, deadline, margin, t0 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rows = list(csv.DictReader(open(f"{run}/log.csv")))
st = torch.load(f"{run}/last.pt", map_location="cpu", weights_only=False)
cfg, done = st["config"], int(st["iteration"])
total = int(cfg["train"]["iterations"])
now = time.time()
t_end = float(rows[-1]["time_s"]) if rows else 0.0
startup = max(0.0, (now - t0) - t_end)              # process start and data loading (not in time_s)
minutes = max(0.05, (deadline - now - margin - startup) / 60)
if done >= total:
    print(f"keep total={total} done={done}")
    sys.exit()
use = [r for r in rows[1:] if int(r["iteration"]) >= done / 3]
if len(use) < 2 or float(use[-1]["time_s"]) <= float(use[0]["time_s"]):
    print(f"resume {minutes:.3f} (too few log rows to measure the rate: {len(rows)}) done={done}")
    sys.exit()
a, b = use[0], use[-1]
rate = (int(b["iteration"]) - int(a["iteration"])) / (float(b["time_s"]) - float(a["time_s"]))
first_row = max(0.0, float(rows[0]["time_s"]) - int(rows[0]["iteration"]) / rate)  # compiling, roughly
left = deadline - now - margin - startup - 0.5 * first_row  # phase 2 compiles again, from the cache
n = max(done + 1, done + int(rate * max(left, 0.0) * 1.05))
cycle = max(1, round(n / 3))
until = 2 * cycle if int(cfg["scales"]["curriculum"].get("until") or 0) > 0 else 0  # until=0: no curriculum, keep it
ckpt = max(10, int(rate * 150))                     # a state every ~2.5 minutes
print(f"set {n} {cycle} {until} {ckpt} {minutes:.3f} rate={rate:.3f}it/s done={done} left={left:.0f}s "
      f"startup={startup:.0f}s compile~{first_row:.0f}s")
EOF
) || plan="error"
    echo "$plan" >"$GPU_RUN/calibration"
    log "calibration: $plan" >>"$GPU_RUN/train.log"
    if [ ! -f "$GPU_RUN/STOP" ]; then
      local n cycle until ckpt minutes
      case "$plan" in
      set*)
        read -r _ n cycle until ckpt minutes _ <<<"$plan"
        echo "$n" >"$GPU_RUN/total"
        train_phase 2 --resume "$RUN" --max-minutes "$minutes" --set "train.iterations=$n" "optim.schedule.periods=[$n]" \
          "scales.curriculum.cycle=$cycle" "scales.curriculum.until=$until" "train.checkpoint_every=$ckpt" || rc=$?
        ;;
      resume*)
        read -r _ minutes _ <<<"$plan"
        train_phase 2 --resume "$RUN" --max-minutes "$minutes" || rc=$?
        ;;
      esac
    fi
  fi
  echo export >"$GPU_RUN/phase"
  export_ema fp32 >>"$GPU_RUN/train.log" 2>&1 || { [ $rc = 0 ] && rc=90; }
  echo "rc=$rc at $(date -u +%FT%TZ), $(( $(date +%s) - start_s )) s, iteration $("$PY" -c "
import torch; print(torch.load('$RUN/last.pt', map_location='cpu', weights_only=False)['iteration'])" 2>/dev/null)" \
    >"$GPU_RUN/DONE"
  echo done >"$GPU_RUN/phase"
}

# ---------------------------------------------------------------------------------------------------------------
# modes
# ---------------------------------------------------------------------------------------------------------------
case "$MODE" in
start)
  MINUTES=${1:-23}
  WATCH_S=${2:-540}
  if driver_alive; then die "already running (driver pid $(cat "$GPU_RUN/driver.pid")): use poll or finish"; fi
  [ -e "$RUN/last.pt" ] && die "$RUN already holds a run (GPU_RUN=... for another)"
  mkdir -p "$GPU_RUN" "$OUT"
  log "host $(hostname), $(nproc) cores, $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  PY=$(pick_python) || die "no Python >= 3.12 with torch, numpy, pyyaml, pillow, safetensors, tqdm (carry wheels in .whl/)"
  echo "$PY" >"$GPU_RUN/python"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  # snapshot: code + packed data
  DATA_ABS=$(cd "$HERE" && readlink -f "$DATA") || die "data folder $DATA not found"
  [ -f "$DATA_ABS/manifest.json" ] || die "$DATA_ABS: no manifest.json (pack it with scripts/gpu/pack_data.py; carry gpu_carry)"
  mkdir -p "$REPO"
  cp -a "$HERE/vssavsr" "$HERE/training" "$HERE/scripts" "$REPO/"
  [ -f "$HERE/pyproject.toml" ] && cp "$HERE/pyproject.toml" "$REPO/"
  rm -rf "$REPO/gpu_carry"; cp -a "$DATA_ABS" "$REPO/gpu_carry"
  rm -f "$GPU_RUN/init.safetensors"
  if [ -n "${INIT:-}" ]; then
    INIT_ABS=$(cd "$HERE" && readlink -f "$INIT") && [ -f "$INIT_ABS" ] || die "INIT=$INIT: no such file (carry it)"
    cp "$INIT_ABS" "$GPU_RUN/init.safetensors"
    log "initial weights: $INIT ($(du -h "$INIT_ABS" | cut -f1))"
  fi
  log "snapshot in $REPO: data $(du -sh "$REPO/gpu_carry" | cut -f1)"
  rm -f "$GPU_RUN/DONE" "$GPU_RUN/STOP" "$GPU_RUN/calibration"
  awk -v n="$(date +%s)" -v m="$MINUTES" 'BEGIN { printf "%d\n", n + m * 60 }' >"$GPU_RUN/deadline"
  echo starting >"$GPU_RUN/phase"
  # detached: a new session survives the command's end (the machine stays held while polls keep it warm)
  GPU_RUN="$GPU_RUN" CONFIG="$CONFIG" CALIBRATE="$CALIBRATE" CAL_ITERS="$CAL_ITERS" CAL_MINUTES="$CAL_MINUTES" \
    EXTRA_SET="$EXTRA_SET" \
    setsid nohup bash "$REPO/scripts/gpu/train.sh" _drive >"$GPU_RUN/driver.log" 2>&1 </dev/null &
  echo $! >"$GPU_RUN/driver.pid"
  log "driver pid $(cat "$GPU_RUN/driver.pid"); deadline $(date -d @"$(cat "$GPU_RUN/deadline")" +%H:%M:%S 2>/dev/null || cat "$GPU_RUN/deadline") ($MINUTES min); config $CONFIG${EXTRA_SET:+ + $EXTRA_SET}"
  sleep 2
  watch "$WATCH_S"
  if [ -f "$GPU_RUN/DONE" ]; then copy_out fp32; else copy_out fp16; fi
  final_rc
  ;;
_drive)
  drive
  ;;
poll)
  [ -f "$GPU_RUN/python" ] || die "nothing started in $GPU_RUN (a fresh machine? the run is lost: start again)"
  watch "${1:-540}"
  if [ -f "$GPU_RUN/DONE" ]; then copy_out fp32; else copy_out fp16; fi
  final_rc
  ;;
finish)
  [ -f "$GPU_RUN/python" ] || die "nothing started in $GPU_RUN (a fresh machine? the run is lost)"
  watch "${1:-0}"
  if driver_alive && [ ! -f "$GPU_RUN/DONE" ]; then
    log "stopping: SIGTERM to training (it finishes the iteration and saves)"
    touch "$GPU_RUN/STOP"
    [ -f "$GPU_RUN/train.pid" ] && kill -TERM "$(cat "$GPU_RUN/train.pid")" 2>/dev/null
    for _ in $(seq 1 150); do driver_alive || break; sleep 1; done
    driver_alive && log "driver still running after 150 s"
  fi
  log "$(progress_line)"
  copy_out fp32
  final_rc
  ;;
state)
  K=${1:-0}
  [ -e "$RUN/last.pt" ] || die "no training state in $RUN"
  driver_alive && die "training is still running: finish first"
  PARTS_DIR=$GPU_RUN/state-parts
  STATE=$(readlink -f "$RUN/last.pt")
  if [ "$(cat "$PARTS_DIR/from" 2>/dev/null)" != "$STATE" ]; then
    rm -rf "$PARTS_DIR"; mkdir -p "$PARTS_DIR"
    (cd "$PARTS_DIR" && split -b "$PART" -d -a 2 "$STATE" last.pt.part- && sha256sum last.pt.part-* >SHA256SUMS)
    (cd "$(dirname "$STATE")" && sha256sum "$(basename "$STATE")" | sed "s/ .*\$/  last.pt/") >>"$PARTS_DIR/SHA256SUMS"
    echo "$STATE" >"$PARTS_DIR/from"
  fi
  mkdir -p "$OUT"
  N=$(ls "$PARTS_DIR"/last.pt.part-* | wc -l)
  for i in 0 1 2 3; do
    j=$(( 4 * K + i )); f=$(printf "%s/last.pt.part-%02d" "$PARTS_DIR" $j)
    [ -f "$f" ] && cp "$f" "$OUT/"
  done
  cp "$PARTS_DIR/SHA256SUMS" "$OUT/"
  log "state $STATE: $N parts; copied set $K: $(cd "$OUT" && ls | tr '\n' ' ')(sets 0..$(( (N - 1) / 4 )))"
  ;;
status)
  log "$(progress_line)"
  driver_alive && log "driver running" || log "driver not running: $(cat "$GPU_RUN/DONE" 2>/dev/null || echo 'no DONE')"
  ;;
assemble)  # on the CPU side: assemble DIR... -o RUN_DIR
  DEST=""; DIRS=()
  while [ $# -gt 0 ]; do
    case "$1" in -o) DEST=$2; shift 2 ;; *) DIRS+=("$1"); shift ;; esac
  done
  [ -n "$DEST" ] && [ ${#DIRS[@]} -gt 0 ] || die "assemble DIR... -o RUN_DIR"
  mkdir -p "$DEST"
  TMP=$(mktemp -d)
  for d in "${DIRS[@]}"; do
    for f in "$d"/*; do
      [ -f "$f" ] || continue
      case "$(basename "$f")" in
        SHA256SUMS) cat "$f" >>"$TMP/SHA256SUMS" ;;
        *.part-*) cp "$f" "$TMP/" ;;
        *) cp "$f" "$DEST/" ;;
      esac
    done
  done
  sort -u -k2 "$TMP/SHA256SUMS" -o "$TMP/SHA256SUMS" 2>/dev/null
  (cd "$TMP" && ls *.part-* 2>/dev/null | sed 's/\.part-.*//' | sort -u) | while read -r name; do
    cat "$TMP/$name".part-* >"$DEST/$name"
    want=$(awk -v n="$name" '$2 == n { print $1 }' "$TMP/SHA256SUMS" | tail -1)
    got=$(sha256sum "$DEST/$name" | cut -d' ' -f1)
    if [ -z "$want" ]; then echo "assembled $DEST/$name ($(du -b "$DEST/$name" | cut -f1) bytes; no checksum listed)"
    elif [ "$want" = "$got" ]; then echo "assembled $DEST/$name ($(du -b "$DEST/$name" | cut -f1) bytes, sha256 OK)"
    else echo "CHECKSUM MISMATCH: $DEST/$name (parts missing?)"; rm -f "$DEST/$name"; exit 3
    fi
  done
  rc=$?
  rm -rf "$TMP"
  exit $rc
  ;;
*)
  sed -n '2,30p' "$0"; exit 2
  ;;
esac
