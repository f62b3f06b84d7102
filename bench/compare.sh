#!/usr/bin/env bash
# Compares `distill bench` (our Rust binary) with the same workloads in PyTorch (and in JAX,
# when it can be imported) on this machine's CPU. Not run in CI.
#
# Usage: bench/compare.sh [--rounds N] [--threads N] [--reps N] [--warmup N]
#                         [--epoch-examples N] [--only NAME[,NAME]] [--json]
#                         [--no-jax | --jax] [--no-build] [--out DIR]
#
#   --rounds N          rounds, each running distill then PyTorch (then JAX): A B A B ... (2)
#   --threads N         compute threads for every implementation (2)
#   --reps N            timed repeats per figure, inside each run (3)
#   --warmup N          untimed repeats per figure before them (1)
#   --epoch-examples N  synthetic training-set size (55000; smaller for a quick check)
#   --only LIST         only these figures (comma-separated); passed to every implementation,
#                       so `distill bench` must accept it too
#   --json              print, as the LAST line of stdout, one JSON object:
#                       {"ratios": {...}, ["ratios_jax": {...},] "distill": {...},
#                        "pytorch": {...}, ["jax": {...},] "machine": "..."}
#   --no-jax            skip JAX even if it can be imported
#   --jax               pip-install jax into the venv if it is missing, and run it
#   --no-build          do not run `cargo build --release` (use target/release/distill as is)
#   --out DIR           keep every run's JSON there (default: a new folder under /tmp)
#   --no-foreign        skip the foreign-teacher figures (below)
#   --foreign-only      only the foreign-teacher figures
#   --ort-lib PATH      run distill's foreign teachers (not the forest, which has its own
#                       evaluator) through onnxruntime instead of tract: builds with
#                       `--features ort` and sets DISTILL_ONNX_RUNTIME=onnxruntime and
#                       ORT_DYLIB_PATH=PATH (e.g. the libonnxruntime.so.* that pip installs in
#                       site-packages/onnxruntime/capi/)
#   --forest FILE       a tree-ensemble teacher (e.g. a 300-tree random forest exported by
#                       skl2onnx) for the foreign-teacher figures, timed over 100,000 rows made
#                       by tiling (with a little noise, seed 0) the x_train of --forest-rows
#   --forest-rows NPZ   the table whose x_train the forest reads (required with --forest)
#   --onnx NAME=FILE[@MEAN,STD]
#                       one more ONNX teacher for the foreign-teacher figures (repeatable;
#                       @MEAN,STD is its input normalization, as distill's --input-norm)
#
# Foreign teachers: the same ONNX files run over MNIST's 60,000 training images in distill
# (`distill bench --only onnx_teacher_s --onnx-teacher FILE`, tract) and in onnxruntime
# (bench/onnx_reference.py, batches of 256, --threads intra-op threads), alternately each
# round: the committed PyTorch CNN (examples/torch_teacher/mnist_cnn.onnx) and a scikit-learn
# MLP exported by skl2onnx (bench/sklearn_teacher.py, made once into --out), plus every
# --onnx. onnxruntime, scikit-learn and skl2onnx are pip-installed into the venv if missing.
# Their ratios are distill/onnxruntime, under "foreign" in the JSON line.
#
# Steps: (a) make sure bench/.venv has torch (else create it: python3 -m venv, then
# `pip install torch numpy` -- the PyPI wheel, with its CUDA runtime packages: about 5.4 GB
# installed, a minute or two to download; CUDA is never used, torch runs on the CPU);
# (b) cargo build --release; (c) run the implementations alternately for --rounds rounds,
# each writing the JSON schema
#   {"implementation": ..., "version": ..., "threads": N,
#    "figures": {"<name>": {"median": x, "min": x, "max": x}, ...}};
# (d) per figure, take the median of the rounds' medians (min of mins, max of maxes) and print
# a table with time ratios distill/pytorch (< 1 = distill faster; for throughputs the ratio
# is pytorch/distill so that it is time-like too); (e) with --json, the JSON line above.
# In "ratios", keys are the figure names without their unit suffix (_ms, _s, _us), and
# "kd_epoch_cached" is distill's cached-teacher KD epoch over PyTorch's LIVE-teacher KD
# epoch (the target's definition); "kd_epoch_cached_vs_cached" compares like with like.
# Figures only one side has (e.g. distill's peak_rss_quick_mib) are shown but get no ratio.
#
# Results mean something only on an otherwise idle machine: with --threads 2 on 2 busy
# cores, OpenMP (PyTorch) and rayon (distill) threads wait on each other and figures grow
# tenfold. The script warns when the load average is high.
#
# Environment:
#   DISTILL_BENCH_CMD  replaces the distill command (then nothing is built). It is a shell
#                      command line, evaluated with the arguments
#                      `--threads N --reps N --warmup N --epoch-examples N [--only L] --json FILE`
#                      appended; it must write the JSON schema above to FILE. Used to test
#                      this script before `distill bench` exists, e.g.
#                        DISTILL_BENCH_CMD='python3 /tmp/fake_distill.py' bench/compare.sh ...
#   BENCH_VENV         the virtual environment to use or create (default bench/.venv)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$script_dir/.." && pwd)
cd "$root"

rounds=2 threads=2 reps=3 warmup=1 epoch_examples=55000 only="" want_json=0
jax_mode=auto build=1 out_dir="" foreign=1 main_figures=1 extra_onnx=() forest="" forest_rows=""
ort_lib=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || { echo "compare.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) need_value "$@"; rounds=$2; shift 2 ;;
    --threads) need_value "$@"; threads=$2; shift 2 ;;
    --reps) need_value "$@"; reps=$2; shift 2 ;;
    --warmup) need_value "$@"; warmup=$2; shift 2 ;;
    --epoch-examples) need_value "$@"; epoch_examples=$2; shift 2 ;;
    --only) need_value "$@"; only=$2; shift 2 ;;
    --json) want_json=1; shift ;;
    --no-jax) jax_mode=off; shift ;;
    --jax) jax_mode=on; shift ;;
    --no-build) build=0; shift ;;
    --out) need_value "$@"; out_dir=$2; shift 2 ;;
    --no-foreign) foreign=0; shift ;;
    --foreign-only) main_figures=0; shift ;;
    --onnx) need_value "$@"
      [[ $2 =~ ^[A-Za-z0-9_-]+=[^@]+(@[-0-9.e]+,[-0-9.e]+)?$ ]] \
        || { echo "compare.sh: --onnx takes NAME=FILE[@MEAN,STD], got '$2'" >&2; exit 2; }
      extra_onnx+=("$2"); shift 2 ;;
    --forest) need_value "$@"; forest=$2; shift 2 ;;
    --ort-lib) need_value "$@"; ort_lib=$2; shift 2 ;;
    --forest-rows) need_value "$@"; forest_rows=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
for pair in "rounds:$rounds:1" "threads:$threads:1" "reps:$reps:1" "warmup:$warmup:0" \
            "epoch-examples:$epoch_examples:1"; do
  IFS=: read -r name value min <<<"$pair"
  if ! [[ "$value" =~ ^[0-9]+$ ]] || (( value < min )); then
    echo "compare.sh: --$name must be an integer >= $min, got '$value'" >&2; exit 2
  fi
done

log() { echo "[compare] $*" >&2; }
if (( !foreign && !main_figures )); then
  echo "compare.sh: --no-foreign with --foreign-only leaves nothing to run" >&2; exit 2
fi
if [[ -n $ort_lib && ! -f $ort_lib ]]; then
  echo "compare.sh: --ort-lib $ort_lib: no such file" >&2; exit 2
fi
if [[ -n $forest || -n $forest_rows ]]; then
  [[ -f $forest && -f $forest_rows ]] \
    || { echo "compare.sh: --forest FILE needs --forest-rows NPZ, both existing files" >&2; exit 2; }
fi
for spec in "${extra_onnx[@]}"; do
  file=${spec#*=}; file=${file%@*}
  [[ -f $file ]] || { echo "compare.sh: --onnx $spec: no such file $file" >&2; exit 2; }
done

# ---- (a) Python environment with torch ----------------------------------------------------
venv=${BENCH_VENV:-$root/bench/.venv}
py=$venv/bin/python
if ! "$py" -c 'import torch' >/dev/null 2>&1; then
  log "creating $venv and installing torch from PyPI (a few GB, a minute or two)"
  [[ -x "$py" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check torch numpy >&2
  "$py" -c 'import torch; torch.ones(2, 2) @ torch.ones(2, 2); print("torch", torch.__version__, "works on the CPU")' >&2
fi
if [[ $jax_mode == on ]] && ! "$py" -c 'import jax' >/dev/null 2>&1; then
  log "installing jax into $venv"
  "$venv/bin/pip" install --disable-pip-version-check jax >&2
fi
jax_py=""
if [[ $jax_mode != off ]]; then
  if "$py" -c 'import jax' >/dev/null 2>&1; then
    jax_py=$py
  elif python3 -c 'import jax' >/dev/null 2>&1; then
    jax_py=$(command -v python3)
  fi
fi
[[ -n $jax_py ]] && log "JAX found ($jax_py): it runs too (--no-jax skips it)"
if (( foreign )) && ! "$py" -c 'import onnxruntime, sklearn, skl2onnx' >/dev/null 2>&1; then
  log "installing onnxruntime, scikit-learn and skl2onnx into $venv"
  "$venv/bin/pip" install --disable-pip-version-check onnx onnxruntime scikit-learn skl2onnx >&2
fi
(( main_figures )) || jax_py=""

# ---- (b) our binary ------------------------------------------------------------------------
if [[ -n ${DISTILL_BENCH_CMD:-} ]]; then
  log "distill command overridden by DISTILL_BENCH_CMD: $DISTILL_BENCH_CMD"
elif (( build )); then
  features=()
  [[ -n $ort_lib ]] && features=(--features ort)
  log "cargo build --release ${features[*]}"
  cargo build --release "${features[@]}" >&2
fi
if [[ -z ${DISTILL_BENCH_CMD:-} && ! -x $root/target/release/distill ]]; then
  echo "compare.sh: $root/target/release/distill is missing" >&2; exit 1
fi

# ---- (c) alternate runs --------------------------------------------------------------------
if [[ -z $out_dir ]]; then
  out_dir=$(mktemp -d /tmp/distill-compare.XXXXXX)
else
  mkdir -p "$out_dir"
fi
log "per-run JSON in $out_dir"

bench_args=(--threads "$threads" --reps "$reps" --warmup "$warmup" --epoch-examples "$epoch_examples")
[[ -n $only ]] && bench_args+=(--only "$only")

load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if python3 -c "import sys; sys.exit(0 if float('$load') > 0.5 else 1)"; then
  log "WARNING: load average is $load: other work is running, figures will be unreliable"
fi

check_json() {  # file implementation
  python3 - "$1" "$2" <<'PY'
import json, sys
path, impl = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        d = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"compare.sh: {impl} wrote no valid JSON to {path}: {e}")
figs = d.get("figures")
if not isinstance(figs, dict) or not figs:
    sys.exit(f"compare.sh: {path} has no figures")
for name, f in figs.items():
    if not all(isinstance(f.get(k), (int, float)) for k in ("median", "min", "max")):
        sys.exit(f"compare.sh: {path}: figure {name} lacks median/min/max numbers")
PY
}

run_one() {  # implementation round
  local impl=$1 r=$2 file="$out_dir/round$2-$1.json"
  rm -f "$file"
  log "round $r/$rounds: $impl"
  local status=0 stdout="$out_dir/round$r-$impl.stdout"
  case "$impl" in
    distill)
      if [[ -n ${DISTILL_BENCH_CMD:-} ]]; then
        eval "$DISTILL_BENCH_CMD"' "${bench_args[@]}" --json "$file"' >"$stdout" || status=$?
      else
        "$root/target/release/distill" bench "${bench_args[@]}" --json "$file" >"$stdout" || status=$?
      fi ;;
    pytorch) "$py" "$script_dir/torch_reference.py" "${bench_args[@]}" --json "$file" >"$stdout" || status=$? ;;
    jax) "$jax_py" "$script_dir/jax_reference.py" "${bench_args[@]}" --json "$file" >"$stdout" || status=$? ;;
  esac
  if (( status != 0 )); then
    echo "compare.sh: the $impl run of round $r failed (exit $status); its stdout is in $stdout" >&2
    exit 1
  fi
  check_json "$file" "$impl"
}

# Foreign teachers as NAME=FILE[@MEAN,STD].
onnx_models=()
if (( foreign )); then
  sk="$out_dir/sklearn_mlp.onnx"
  if [[ ! -f $sk ]]; then
    log "training and exporting the scikit-learn MLP teacher"
    "$py" "$script_dir/sklearn_teacher.py" "$sk" >&2
  fi
  onnx_models=("torch_cnn=$root/examples/torch_teacher/mnist_cnn.onnx@0.1307,0.3081"
               "sklearn_mlp=$sk" "${extra_onnx[@]}")
  if [[ -n $forest ]]; then
    rows="$out_dir/forest-rows.npz"
    "$py" - "$forest_rows" "$rows" <<'PY'
import sys
import numpy as np
x = np.load(sys.argv[1])["x_train"].astype(np.float32)
rng = np.random.default_rng(0)
reps = -(-100_000 // len(x))
big = np.tile(x, (reps, 1))[:100_000]
big += rng.normal(0, 0.01, big.shape).astype(np.float32) * big.std(axis=0)
y = (np.arange(len(big)) % 2).astype(np.int64)
np.savez(sys.argv[2], x_train=big, y_train=y, x_test=big[:10], y_test=y[:10])
PY
    onnx_models+=("forest=$forest#$rows")
  fi
fi

run_foreign() {  # NAME=FILE[@NORM][#ROWS] round
  local name=${1%%=*} file=${1#*=} norm="" rows="" r=$2
  [[ $file == *#* ]] && { rows=${file##*#}; file=${file%#*}; }
  [[ $file == *@* ]] && { norm=${file##*@}; file=${file%@*}; }
  local args=(--threads "$threads" --reps "$reps" --warmup "$warmup")
  local d="$out_dir/round$r-onnx-$name-distill.json" o="$out_dir/round$r-onnx-$name-onnxruntime.json"
  log "round $r/$rounds: ONNX teacher $name in distill, then onnxruntime"
  local bench=(bench --only onnx_teacher_s --onnx-teacher "$file" "${args[@]}" --json "$d")
  [[ -n $norm ]] && bench+=(--input-norm "$norm")
  [[ -n $rows ]] && bench+=(--data "$rows")
  if [[ -n ${DISTILL_BENCH_CMD:-} ]]; then
    eval "$DISTILL_BENCH_CMD"' "${bench[@]:1}"' >/dev/null || { echo "compare.sh: distill failed on $name" >&2; exit 1; }
  elif [[ -n $ort_lib && -z $rows ]]; then
    DISTILL_ONNX_RUNTIME=onnxruntime ORT_DYLIB_PATH=$ort_lib "$root/target/release/distill" "${bench[@]}" >/dev/null \
      || { echo "compare.sh: distill (through onnxruntime) failed on $name" >&2; exit 1; }
  else
    "$root/target/release/distill" "${bench[@]}" >/dev/null || { echo "compare.sh: distill failed on $name" >&2; exit 1; }
  fi
  local ref=("$py" "$script_dir/onnx_reference.py" "$file" "${args[@]}" --json "$o")
  [[ -n $norm ]] && ref+=(--input-norm "$norm")
  # A tree ensemble scores a whole block of rows at once in both runtimes.
  [[ -n $rows ]] && ref+=(--rows "$rows" --batch 10000)
  "${ref[@]}" >/dev/null || { echo "compare.sh: onnxruntime failed on $name" >&2; exit 1; }
  check_json "$d" distill
  check_json "$o" onnxruntime
}

impls=()
if (( main_figures )); then
  impls=(distill pytorch)
  [[ -n $jax_py ]] && impls+=(jax)
fi
for ((r = 1; r <= rounds; r++)); do
  for impl in "${impls[@]}"; do
    run_one "$impl" "$r"
  done
  for m in "${onnx_models[@]}"; do
    run_foreign "$m" "$r"
  done
done
foreign_names=$(printf '%s\n' "${onnx_models[@]}" | sed 's/=.*//' | paste -sd, -)

# ---- (d) + (e) combine and report -----------------------------------------------------------
machine=$(python3 - <<'PY'
import os
model = "unknown CPU"
try:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
except OSError:
    pass
print(f"{model}, {os.cpu_count()} cores")
PY
)

python3 - "$out_dir" "$rounds" "$want_json" "$machine" "$foreign_names" "${impls[@]}" <<'PY'
import json
import statistics
import sys

out_dir, rounds, want_json, machine = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
foreign = [n for n in sys.argv[5].split(",") if n]
impls = sys.argv[6:]
ORDER = [
    "teacher_step_ms", "teacher_epoch_s", "kd_step_live_ms", "kd_epoch_live_s",
    "kd_step_cached_ms", "kd_epoch_cached_s", "teacher_latency_b1_us", "student_latency_b1_us",
    "teacher_throughput_b1024", "student_throughput_b1024", "cnn_teacher_step_ms",
    "cnn_student_step_ms",
]


def combine(impl):
    """Per figure: median of the rounds' medians, min of mins, max of maxes."""
    per = {}
    for r in range(1, rounds + 1):
        with open(f"{out_dir}/round{r}-{impl}.json") as f:
            for name, fig in json.load(f)["figures"].items():
                per.setdefault(name, []).append(fig)
    return {name: {"median": statistics.median(f["median"] for f in figs),
                   "min": min(f["min"] for f in figs),
                   "max": max(f["max"] for f in figs)}
            for name, figs in per.items()}


def key(name):
    for suffix in ("_ms", "_us", "_s"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def time_ratio(name, ours, theirs):
    a, b = ours.get(name), theirs.get(name)
    if a is None or b is None:
        return None
    a, b = a["median"], b["median"]
    if "throughput" in name:  # higher is better: invert so that < 1 = distill faster
        return b / a if a > 0 else None
    return a / b if b > 0 else None


def ratios(ours, theirs):
    out = {}
    for name in ORDER + sorted(set(ours) - set(ORDER)):
        r = time_ratio(name, ours, theirs)
        if r is not None:
            out[key(name)] = r
    if "kd_epoch_cached" in out:
        out["kd_epoch_cached_vs_cached"] = out["kd_epoch_cached"]
        del out["kd_epoch_cached"]
    if "kd_epoch_cached_s" in ours and theirs.get("kd_epoch_live_s", {}).get("median", 0) > 0:
        # The target: distill with a cached teacher against the reference's live teacher.
        out["kd_epoch_cached"] = ours["kd_epoch_cached_s"]["median"] / theirs["kd_epoch_live_s"]["median"]
    return out


figs = {impl: combine(impl) for impl in impls}


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def fmt_r(v):
    return "-" if v is None else f"{v:.3f}"


def table(head, rows):
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: " | ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(r, widths)))
    print(line(head))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


print(f"machine: {machine}; {rounds} round(s); median of the rounds' medians")
result = {}
if impls:
    d, t = figs["distill"], figs["pytorch"]
    j = figs.get("jax")
    names = [n for n in ORDER if any(n in f for f in figs.values())]
    names += sorted({n for f in figs.values() for n in f} - set(ORDER))
    rows = []
    head = ["figure", "distill", "pytorch"] + (["jax"] if j is not None else [])
    head.append("time ratio (distill/pytorch, <1 = distill faster)")
    if j is not None:
        head.append("time ratio (distill/jax)")
    for n in names:
        row = [n, fmt(d.get(n, {}).get("median")), fmt(t.get(n, {}).get("median"))]
        if j is not None:
            row.append(fmt(j.get(n, {}).get("median")))
        row.append(fmt_r(time_ratio(n, d, t)))
        if j is not None:
            row.append(fmt_r(time_ratio(n, d, j)))
        rows.append(row)
    target = ratios(d, t).get("kd_epoch_cached")
    if target is not None:
        row = ["kd_epoch_cached_s vs reference kd_epoch_live_s (target)",
               fmt(d["kd_epoch_cached_s"]["median"]), fmt(t["kd_epoch_live_s"]["median"])]
        if j is not None:
            row.append(fmt(j.get("kd_epoch_live_s", {}).get("median")))
        row.append(fmt_r(target))
        if j is not None:
            row.append(fmt_r(ratios(d, j).get("kd_epoch_cached")))
        rows.append(row)
    table(head, rows)
    result["ratios"] = ratios(d, t)
    if j is not None:
        result["ratios_jax"] = ratios(d, j)
    result["distill"] = d
    result["pytorch"] = t
    if j is not None:
        result["jax"] = j

if foreign:
    rows, result["foreign"] = [], {}
    for name in foreign:
        ours, ref = combine(f"onnx-{name}-distill"), combine(f"onnx-{name}-onnxruntime")
        r = time_ratio("onnx_teacher_s", ours, ref)
        result["foreign"][name] = {"ratio": r, "distill_s": ours["onnx_teacher_s"],
                                   "onnxruntime_s": ref["onnx_teacher_s"]}
        rows.append([name, fmt(ours["onnx_teacher_s"]["median"]),
                     fmt(ref["onnx_teacher_s"]["median"]), fmt_r(r)])
    print()
    print("ONNX teachers over 60,000 MNIST images (the forest: 100,000 rows), seconds; distill runs tract (onnxruntime with --ort-lib), its own evaluator for a tree ensemble:")
    table(["teacher", "distill", "onnxruntime",
           "time ratio (distill/onnxruntime)"], rows)

if want_json:
    result["machine"] = machine
    print(json.dumps(result), flush=True)
PY
