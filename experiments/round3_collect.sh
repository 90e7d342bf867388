#!/usr/bin/env bash
# Copy the small outputs of experiments/round3.sh (never model weights) into
# experiments/round3_outputs, to be committed: each finished run's run.json and metrics.jsonl,
# every evaluation report and per-situation CSV, the make-pairs summaries and timings.tsv.
# Paths under OUT_DIR are written as OUT/, as in round2_outputs.
#
#   bash experiments/round3_collect.sh [OUT_DIR]
#   python experiments/round3_summary.py experiments/round3_outputs experiments/figures
set -euo pipefail
src=${1:-results-round3}
root="$(cd "$(dirname "$0")/.." && pwd)"
dst="$root/experiments/round3_outputs"
absolute="$(cd "$src" && pwd)"
as_out() { sed -e "s#$absolute/#OUT/#g" -e "s#$src/#OUT/#g" "$1" > "$2"; }
mkdir -p "$dst/evals"
for run in "$src"/*/run.json; do
    [ -e "$run" ] && grep -q '"status": "finished"' "$run" || continue
    arm=$(basename "$(dirname "$run")")
    mkdir -p "$dst/$arm"
    as_out "$run" "$dst/$arm/run.json"
    cp "$src/$arm/metrics.jsonl" "$dst/$arm/"
done
for file in "$src"/evals/*.json "$src"/evals/*.csv "$src"/*.summary.txt "$src"/timings.tsv; do
    [ -e "$file" ] || continue
    case $file in */evals/*) as_out "$file" "$dst/evals/$(basename "$file")" ;; *) as_out "$file" "$dst/$(basename "$file")" ;; esac
done
du -sh "$dst"
