#!/usr/bin/env bash
# The table results of the README: for each public table, its tree teacher distilled into the
# same small MLP over three seeds, with `distill table` (student alone, distilled on the training
# rows, distilled with MUNGE rows), then `distill summarize` over the seeds.
#
#   bench/tables.sh [TABLES_DIR] [RUNS_DIR]
#
# TABLES_DIR holds what `python bench/tables.py fetch NAME DIR` and `... teacher NAME DIR` write
# (default /tmp/tables); RUNS_DIR defaults to runs/tables. Set DISTILL to use another binary.
set -euo pipefail
tables=${1:-/tmp/tables}
runs=${2:-runs/tables}
distill=${DISTILL:-target/release/distill}
# table:teacher file
pairs=(letter:letter-rf300.onnx diamonds:diamonds-hgb300.onnx zipcodes:zipcodes-rf300.onnx)
for pair in "${pairs[@]}"; do
    name=${pair%%:*}
    teacher=$tables/$name/${pair#*:}
    [ -f "$teacher" ] || { echo "skipping $name: no $teacher" >&2; continue; }
    for seed in 1 2 3; do
        out=$runs/$name-s$seed
        [ -f "$out/report.json" ] && continue
        "$distill" table --data "$tables/$name" --teacher "$teacher" --seed "$seed" --out "$out"
    done
    "$distill" summarize "$runs/$name"-s1 "$runs/$name"-s2 "$runs/$name"-s3 > "$runs/$name.md"
    echo "$runs/$name.md"
done
