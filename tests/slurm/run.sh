#!/usr/bin/env bash
# Runs examples/slurm, the scripts as a user submits them, on a real one-node Slurm brought up
# here: munged, slurmctld and slurmd on localhost, with a generated slurm.conf (one node, 2
# CPUs, ports off the defaults) and every file in a temporary directory. Then:
#   - the teacher pass runs as an array of 3 tasks over a slice of MNIST, and the student as a
#     job that depends on it;
#   - the joined shards must hold the bytes of one unsharded `distill soft-targets` run, and
#     the student job must have written and exported a student;
#   - one shard is broken the way a task killed mid-way and a damaged file system leave it, and
#     rerunning that one task alone must repair it;
#   - the whole array rerun must verify every shard and rewrite none.
# Every daemon it started is stopped on the way out, also on failure.
#
# Needs root, munge and slurm-wlm (Debian: apt-get install slurm-wlm munge) and a built
# distill (DISTILL, default target/release/distill). tests/it/slurm.rs runs it under cargo
# test. KEEP=1 keeps the temporary directory.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
distill=${DISTILL:-$repo/target/release/distill}
# Jobs may take this long in all before the test gives up (a bound, not a measurement).
limit=${SLURM_TEST_LIMIT:-600}

say() { echo "slurm test: $*"; }
fail() {
  say "FAILED: $*"
  exit 1
}
if [ "$(id -u)" != 0 ]; then
  # slurmd runs the jobs and munged signs their credentials: as root, here through sudo.
  sudo -n true 2>/dev/null || fail "needs root, or sudo without a password"
  exec sudo -n --preserve-env=DISTILL,KEEP,SLURM_TEST_LIMIT bash "$0" "$@"
fi
for tool in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
  command -v "$tool" >/dev/null || fail "$tool not found (apt-get install slurm-wlm munge)"
done
[ -x "$distill" ] || fail "no distill binary at $distill (cargo build --release)"

work=$(mktemp -d /tmp/distill-slurm.XXXXXX)
chmod 755 "$work" # munged wants its socket directory searchable by all
pids=()
jobs_submitted=()
cleanup() {
  local rc=$?
  set +e
  if [ ${#jobs_submitted[@]} -gt 0 ] && [ -n "${SLURM_CONF:-}" ]; then
    scancel "${jobs_submitted[@]}" 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # Newest first: slurmd, slurmctld, then munged.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null
    wait "${pids[i]}" 2>/dev/null
  done
  if [ "$rc" != 0 ]; then
    for log in "$work"/*.log "$work"/jobs/*.out; do
      [ -f "$log" ] && {
        echo "--- $log"
        tail -n 30 "$log"
      }
    done
  fi
  if [ -n "${KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls `$@` every 0.2 s until it succeeds, for at most $1 seconds.
wait_for() {
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# munge, with a fresh key and its socket in the temporary directory.
dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge.key"
munged -F --key-file "$work/munge.key" --socket "$work/munge.sock" \
  --pid-file "$work/munged.pid" --log-file "$work/munged.log" --seed-file "$work/munge.seed" &
pids+=($!)
wait_for 20 test -S "$work/munge.sock" || fail "munged did not come up"

host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/state" "$work/spool" "$work/jobs"
cat >"$work/slurm.conf" <<CONF
ClusterName=distilltest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge.sock
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=1
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld -D -c -f "$SLURM_CONF" >"$work/slurmctld.stdout" 2>&1 &
pids+=($!)
wait_for 30 scontrol ping || fail "slurmctld did not answer"
slurmd -D -N "$host" -f "$SLURM_CONF" >"$work/slurmd.stdout" 2>&1 &
pids+=($!)
node_idle() { sinfo -h -N -o %t | grep -qx idle; }
wait_for 60 node_idle || fail "the node did not become idle: $(sinfo -N 2>&1)"
say "one-node Slurm up on $host (127.0.0.1), ports $port and $((port + 1))"

# A small teacher on a slice of MNIST, and the reference: the unsharded soft targets.
common=(--data-dir "$repo/data/mnist" --train-size 6000 --validation-size 1000)
"$distill" train --model mlp:32 --epochs 1 --out "$work/teacher" "${common[@]}" >/dev/null
"$distill" soft-targets --teacher "$work/teacher" --out "$work/whole" "${common[@]}"

# The example, submitted as a user would, from a job directory; distill on the PATH.
PATH="$(dirname "$distill"):$PATH"
export PATH
export STUDENT_OPTIONS="--student mlp:16 --epochs 1"
cd "$work/jobs"
read -r _ teacher_job _ student_job < <("$repo/examples/slurm/submit.sh" \
  "$work/teacher" "$work/cache" "$work/student" 3 "${common[@]}")
jobs_submitted+=("$teacher_job" "$student_job")
say "submitted teacher array $teacher_job (3 tasks) and student $student_job"

# Waits for jobs $@ to leave the queue, then checks that each task completed.
finish() {
  queue_empty() { [ -z "$(squeue -h -j "$(
    IFS=,
    echo "$*"
  )" 2>/dev/null)" ]; }
  wait_for "$limit" queue_empty "$@" || fail "jobs $* still queued after $limit s: $(squeue)"
  local job states
  for job in "$@"; do
    states=$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z_]*' | sort | uniq -c)
    echo "$states" | grep -qv 'JobState=COMPLETED' && fail "job $job: $states"
    say "job $job: $(tr -s ' \n' ' ' <<<"$states")"
  done
}
finish "$teacher_job" "$student_job"

# The log-probability bytes of safetensors files (header skipped), concatenated in order.
values() {
  local f n
  for f in "$@"; do
    n=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
    tail -c +$((9 + n)) "$f"
  done
}
shard() { ls "$work"/cache/teacher-logprobs-*-shard-"$1"-of-3.safetensors; }
shards_written=$(find "$work/cache" -name 'teacher-logprobs-*.safetensors' | wc -l)
[ "$shards_written" = 3 ] || fail "not 3 shards: $(ls -a "$work/cache")"
values "$(shard 1)" "$(shard 2)" "$(shard 3)" >"$work/joined.bin"
values "$work"/whole/teacher-logprobs-*.safetensors >"$work/whole.bin"
[ "$(stat -c %s "$work/whole.bin")" = $((6000 * 10 * 4)) ] || fail "unexpected reference size"
cmp "$work/joined.bin" "$work/whole.bin" || fail "joined shards differ from the unsharded run"
say "3 shards joined: byte-identical to the unsharded soft targets ($(stat -c %s "$work/whole.bin") bytes)"
grep -q "joined from 3 shards" "$work/jobs/distill-student-$student_job.out" ||
  fail "the student did not learn from the 3 shards"
if [ ! -f "$work/student/complete.json" ] || [ ! -s "$work/student/student.onnx" ]; then
  fail "the student job left no finished, exported student"
fi
say "student job: distilled from the joined shards, exported to student.onnx"

# Task 2 killed mid-way leaves a temporary file; a damaged file system, a cut shard. Rerun
# task 2 alone: it must find its shard broken, compute it again, and clear the leftovers.
cp "$(shard 2)" "$work/shard2.good"
truncate -s $(($(stat -c %s "$(shard 2)") / 2)) "$(shard 2)"
leftover="$work/cache/.$(basename "$(shard 2)").tmp4242.deadnode"
echo partial >"$leftover"
rerun=$(TEACHER="$work/teacher" CACHE="$work/cache" SHARDS=3 sbatch --parsable --array=2 \
  "$repo/examples/slurm/teacher.sbatch" "${common[@]}")
rerun=${rerun%%;*}
jobs_submitted+=("$rerun")
finish "$rerun"
grep -q "was broken" "$work/jobs/distill-teacher-${rerun}_2.out" ||
  fail "the rerun did not report the broken shard: $(cat "$work/jobs/distill-teacher-${rerun}_2.out")"
cmp "$(shard 2)" "$work/shard2.good" || fail "the rerun did not restore shard 2"
[ ! -e "$leftover" ] || fail "the rerun left the killed task's temporary file"
say "shard 2 broken, task 2 rerun alone ($rerun): repaired byte for byte"

# The whole array again: every task finds its shard finished, verifies it, and writes nothing.
sha_before=$(cat "$work"/cache/teacher-logprobs-*.safetensors | sha256sum)
again=$(TEACHER="$work/teacher" CACHE="$work/cache" sbatch --parsable --array=1-3 \
  "$repo/examples/slurm/teacher.sbatch" "${common[@]}")
again=${again%%;*}
jobs_submitted+=("$again")
finish "$again"
for i in 1 2 3; do
  grep -q "already there, verified" "$work/jobs/distill-teacher-${again}_$i.out" ||
    fail "task $i of the rerun array did not verify its shard"
done
[ "$(cat "$work"/cache/teacher-logprobs-*.safetensors | sha256sum)" = "$sha_before" ] ||
  fail "rerunning the array changed a finished shard"
say "whole array rerun ($again): 3 shards verified, none rewritten"
say "all checks passed"
