#!/usr/bin/env bash
# Queues a distillation on Slurm: the teacher pass as an array of SHARDS tasks, then the
# student once they all succeeded.
#
#   examples/slurm/submit.sh TEACHER CACHE STUDENT SHARDS [options for both passes]
#
# e.g. examples/slurm/submit.sh /shared/runs/teacher /shared/cache /shared/runs/student 8 \
#        --data-dir /shared/data/mnist
# Environment: STUDENT_OPTIONS (options of `distill distill` alone), SBATCH_OPTIONS (given to
# both sbatch calls, e.g. "--partition=cpu --time=1:00:00"). Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 4 ]; then
  sed -n '5,10p' "$0" >&2
  exit 2
fi
export TEACHER=$1 CACHE=$2 STUDENT=$3 SHARDS=$4
shift 4
mkdir -p "$CACHE"
# SBATCH_OPTIONS is a list of options, split on spaces on purpose.
# shellcheck disable=SC2086
teacher=$(sbatch --parsable --array="1-$SHARDS" ${SBATCH_OPTIONS:-} "$here/teacher.sbatch" "$@")
teacher=${teacher%%;*} # --parsable prints ID or ID;CLUSTER
# A failed teacher task cancels the student instead of leaving it pending forever.
# shellcheck disable=SC2086
student=$(sbatch --parsable --dependency="afterok:$teacher" --kill-on-invalid-dep=yes \
  ${SBATCH_OPTIONS:-} "$here/student.sbatch" "$@")
echo "teacher $teacher student ${student%%;*}"
