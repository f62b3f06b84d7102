#!/usr/bin/env bash
# The GPU run: on a machine with an NVIDIA GPU, builds distill with `--features cuda`, times
# `distill bench` and the PyTorch CUDA reference (bench/torch_reference.py --device cuda) on the
# same figures, writes one JSON file and prints a one-line summary. Meant to run unattended in
# under 8 minutes, build included. Not run in CI (no GPU there): its tests check the argument
# handling, the refusal without a GPU, and the JSON it assembles from stand-in commands.
#
# Usage: bench/gpu.sh [--out FILE] [--reps N] [--warmup N] [--epoch-examples N]
#                     [--binary PATH] [--python PATH]
#
#   --out FILE          the JSON to write (default runs/gpu/gpu.json)
#   --reps N            timed repeats per figure (3)
#   --warmup N          untimed repeats first (1)
#   --epoch-examples N  synthetic training-set size of the epoch figures (55000)
#   --binary PATH       a distill built with --features cuda already: no build
#   --python PATH       the Python whose torch sees the GPU (default: bench/.venv's, else python3)
#
# Exit codes: 0 done; 2 bad arguments; 3 no NVIDIA GPU (nvidia-smi missing or lists none);
# 4 the build or a run failed (the JSON, if written, says which).
#
# JSON: {"gpu": "...", "driver": "...", "build_s": x, "figures": [...],
#        "distill": {name: {"median","min","max"}} | null, "distill_error": "..." | null,
#        "pytorch": {...} | null, "pytorch_error": "..." | null,
#        "ratios": {name: distill/pytorch time ratio}}
#
# Environment (for its tests): GPU_DISTILL_CMD and GPU_TORCH_CMD replace the two timed
# commands (shell command lines, evaluated with `--json FILE` and the figure arguments
# appended); DISTILL_NVIDIA_SMI replaces `nvidia-smi`.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$script_dir/.." && pwd)
cd "$root"

out="runs/gpu/gpu.json" reps=3 warmup=1 epoch_examples=55000 binary="" py=""
FIGURES="teacher_step_ms,teacher_epoch_s,kd_epoch_live_s,kd_epoch_cached_s,cnn_teacher_step_ms,cnn_student_step_ms,teacher_throughput_b1024,student_latency_b1_us"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
fail() { echo "gpu.sh: $1" >&2; exit "${2:-2}"; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || fail "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) need_value "$@"; out=$2; shift 2 ;;
    --reps) need_value "$@"; reps=$2; shift 2 ;;
    --warmup) need_value "$@"; warmup=$2; shift 2 ;;
    --epoch-examples) need_value "$@"; epoch_examples=$2; shift 2 ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --python) need_value "$@"; py=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "gpu.sh: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
for pair in "reps:$reps:1" "warmup:$warmup:0" "epoch-examples:$epoch_examples:128"; do
  IFS=: read -r name value min <<<"$pair"
  if ! [[ "$value" =~ ^[0-9]+$ ]] || (( value < min )); then
    fail "--$name must be an integer >= $min, got '$value'"
  fi
done
[[ -z $binary || -x $binary ]] || fail "--binary $binary is not an executable file"

log() { echo "[gpu] $*" >&2; }

# ---- the GPU -------------------------------------------------------------------------------
smi=${DISTILL_NVIDIA_SMI:-nvidia-smi}
gpu_line=$("$smi" --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1) \
  || fail "no NVIDIA GPU: '$smi' is missing or failed; run this on a machine with an NVIDIA GPU and its driver" 3
[[ -n $gpu_line ]] || fail "no NVIDIA GPU: '$smi' lists none" 3
gpu=${gpu_line%%,*}
driver=$(echo "${gpu_line#*,}" | xargs)
log "GPU: $gpu (driver $driver)"

if [[ -z $py ]]; then
  py=$root/bench/.venv/bin/python
  [[ -x $py ]] || py=python3
fi
mkdir -p "$(dirname "$out")"
work=$(mktemp -d /tmp/distill-gpu.XXXXXX)
trap 'rm -rf "$work"' EXIT
args=(--reps "$reps" --warmup "$warmup" --epoch-examples "$epoch_examples" --only "$FIGURES")

# ---- build ---------------------------------------------------------------------------------
build_s=0
if [[ -z $binary && -z ${GPU_DISTILL_CMD:-} ]]; then
  log "cargo build --release --features cuda"
  start=$(date +%s)
  timeout 330 cargo build --release --features cuda >&2 || fail "the CUDA build failed or took over 330 s" 4
  build_s=$(( $(date +%s) - start ))
  binary=$root/target/release/distill
fi

# ---- the two runs (each failure is recorded, not fatal) -----------------------------------
run_timed() {  # name command-line...
  local name=$1; shift
  log "$name"
  local status=0
  timeout 240 "$@" > "$work/$name.stdout" 2> "$work/$name.stderr" || status=$?
  (( status == 0 )) && return 0
  { echo -n "exit status $status"; (( status == 124 )) && echo -n " (over 240 s)";
    echo -n ": "; tail -n 3 "$work/$name.stderr" | tr '\n' ' '; } > "$work/$name.error"
  log "$name failed: $(cat "$work/$name.error")"
}
if [[ -n ${GPU_DISTILL_CMD:-} ]]; then
  run_timed distill bash -c "$GPU_DISTILL_CMD"' "$@"' _ "${args[@]}" --json "$work/distill.json"
else
  run_timed distill "$binary" bench "${args[@]}" --json "$work/distill.json"
fi
if [[ -n ${GPU_TORCH_CMD:-} ]]; then
  run_timed pytorch bash -c "$GPU_TORCH_CMD"' "$@"' _ "${args[@]}" --json "$work/pytorch.json"
else
  run_timed pytorch "$py" "$script_dir/torch_reference.py" --device cuda "${args[@]}" --json "$work/pytorch.json"
fi

# ---- one JSON, one line --------------------------------------------------------------------
python3 - "$work" "$out" "$gpu" "$driver" "$build_s" "$FIGURES" <<'PY'
import json, os, sys
work, out, gpu, driver, build_s, figures = sys.argv[1:7]
result = {"gpu": gpu, "driver": driver, "build_s": int(build_s), "figures": figures.split(",")}
for impl in ("distill", "pytorch"):
    figs, error = None, None
    try:
        with open(os.path.join(work, f"{impl}.json")) as f:
            figs = json.load(f)["figures"]
    except (OSError, ValueError, KeyError) as e:
        try:
            with open(os.path.join(work, f"{impl}.error")) as f:
                error = f.read().strip() or str(e)
        except OSError:
            error = f"no figures ({e})"
    result[impl], result[f"{impl}_error"] = figs, error
ratios = {}
d, t = result["distill"] or {}, result["pytorch"] or {}
for name in result["figures"]:
    if name in d and name in t and d[name]["median"] > 0 and t[name]["median"] > 0:
        a, b = d[name]["median"], t[name]["median"]
        ratios[name] = b / a if "throughput" in name else a / b
result["ratios"] = ratios
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
os.replace(tmp, out)
shown = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) or "no ratio (a run failed)"
print(f"gpu.sh: {gpu}: distill/pytorch time ratios: {shown}; build {build_s} s -> {out}")
sys.exit(0 if ratios and not result["distill_error"] and not result["pytorch_error"] else 4)
PY
