#!/usr/bin/env bash
# RESULTS.md, reproduced: does DPO make SmolLM2-135M-Instruct risk-averse, and how far
# does it generalise? CPU-sized: about 2.5 hours on 2 cores. Every step is a riskdpo
# command with a fixed seed; a step whose output already exists is skipped, so an
# interrupted run picks up where it stopped.
#
#   bash experiments/results.sh [OUT_DIR]
#   python experiments/summarize.py OUT_DIR     # the tables of RESULTS.md
set -euo pipefail
out=${1:-results-smollm2}
mkdir -p "$out"
instruction="Output the label of your chosen option only."
missing() { [ ! -e "$out/$1" ]; }  # is OUT/$1 still to make?

# Data. Held-out tests: the five test sheets of the bundled sample (riskdpo generate, see
# data/README.md): low, medium, high and astronomical stakes and a cooperate framing, 60
# situations each. Training: the sample's low-stakes `train` sheet (240 situations) for the
# small runs, 1,200 more low-stakes situations from `riskdpo generate` for the large one,
# and for the bucket run 240 low-stakes situations kept with `--keep differences` (also
# those where only the alpha = 0.10 agent's best differs, labelled `010_only`); 10% of each
# held back, by situation, as validation pairs.
if missing situations.json; then riskdpo convert data/sample.xlsx -o "$out/situations.json"; fi
if missing train_large.xlsx; then
    riskdpo generate -o "$out/train_large.xlsx" --sheet train --stakes low --situations 1200 --seed 21
fi
if missing train_large.json; then riskdpo convert "$out/train_large.xlsx" -o "$out/train_large.json"; fi
if missing train_bucket.xlsx; then
    riskdpo generate -o "$out/train_bucket.xlsx" --sheet train --stakes low --situations 240 --seed 22 --keep differences
fi
if missing train_bucket.json; then riskdpo convert "$out/train_bucket.xlsx" -o "$out/train_bucket.json"; fi
pairs() {  # pairs STEM SITUATIONS REJECTED [make-pairs options...]
    local stem=$1 situations=$2 rejected=$3
    shift 3
    if missing "$stem.jsonl"; then
        riskdpo make-pairs "$out/$situations" --rejected "$rejected" --instruction "$instruction" \
            --val-fraction 0.1 --seed 0 -o "$out/$stem.jsonl" "$@"
    fi
}
pairs pairs_neutral situations.json risk-neutral --sheet train
pairs pairs_bucket train_bucket.json bucket
pairs pairs_large_neutral train_large.json risk-neutral

# LoRA DPO runs (rank 16, all linear layers, batch 8, 10% warm-up, seed 0): each run's
# settings are configs/results/RUN.yaml; only the pair files and the folder come from here.
configs="$(cd "$(dirname "$0")/.." && pwd)/configs/results"
train() {  # train RUN PAIRS_STEM
    local run=$1 stem=$2
    if missing "$run/final-model"; then
        riskdpo train --config "$configs/$run.yaml" --dataset "$out/$stem.jsonl" --val "$out/${stem}_val.jsonl" \
            --output-dir "$out/$run" --no-progress
    fi
}
# Small runs, 216 pairs, 2 epochs: on the sample's pairs, rejected = risk-neutral at beta
# 0.5, 0.3 and 0.1, and SFT-then-DPO; on the bucket sheet, rejected by the bucket policy
# (the alpha = 0.10 best for `010_only`, the risk-neutral best for `lin_only`, a seeded coin
# for `both`).
train run_neutral pairs_neutral
train run_beta0.3 pairs_neutral
train run_beta0.1 pairs_neutral
train run_sft_dpo pairs_neutral
train run_bucket pairs_bucket
# The large run: 1,080 generated pairs, one epoch, rejected = risk-neutral.
train run_large_neutral pairs_large_neutral

# Every model on every held-out situation (300), the base first so that each comparison is
# a paired difference against it; then every model again with the lotteries moved between
# option lines (a preferred label cannot pass for risk aversion); and the base and the large
# run answering in generated text instead of by label log-probabilities.
sheets=()
for sheet in test_low test_medium test_high test_astronomical test_cooperate; do sheets+=(--sheet "$sheet"); done
evaluate() {  # evaluate REPORT_STEM RUN... -- [eval-choices options...]
    local stem=$1 models=(--model smollm2-135m)
    shift
    while [ "$1" != "--" ]; do models+=(--model "$out/$1/final-model"); shift; done
    shift
    if missing "$stem.json"; then
        riskdpo eval-choices "${models[@]}" --situations "$out/situations.json" "${sheets[@]}" \
            --instruction "$instruction" --seed 0 --no-progress -o "$out/$stem.json" "$@"
    fi
}
runs=(run_neutral run_beta0.3 run_beta0.1 run_sft_dpo run_bucket run_large_neutral)
evaluate eval_logprob "${runs[@]}" --
evaluate eval_shuffled "${runs[@]}" -- --shuffle-options
evaluate eval_generate run_large_neutral -- --mode generate

for run in "${runs[@]}"; do
    riskdpo report "$out/$run" -o "$out/figures/$run" > /dev/null
done
