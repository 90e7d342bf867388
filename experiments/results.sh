#!/usr/bin/env bash
# RESULTS.md, reproduced: does DPO make SmolLM2-135M-Instruct risk-averse, and how far
# does it generalise? CPU-sized (about 40 minutes on 2 quiet cores); every step is a
# riskdpo command with a fixed seed.
#
#   bash experiments/results.sh [OUT_DIR]
#   python experiments/summarize.py OUT_DIR     # the tables of RESULTS.md
set -euo pipefail
out=${1:-results-smollm2}
mkdir -p "$out"
instruction="Output the label of your chosen option only."

# Data: the bundled sample (riskdpo generate, see data/README.md). Training pairs from the
# low-stakes `train` sheet (240 situations; 10% held back as validation pairs); tests on
# the five held-out sheets: low, medium, high and astronomical stakes, and a cooperate framing.
riskdpo convert data/sample.xlsx -o "$out/situations.json"
riskdpo make-pairs "$out/situations.json" --sheet train --rejected risk-neutral --instruction "$instruction" \
    --val-fraction 0.1 --seed 0 -o "$out/pairs_neutral.jsonl"
sheets=()
for sheet in test_low test_medium test_high test_astronomical test_cooperate; do sheets+=(--sheet "$sheet"); done

# LoRA DPO, rejected = the risk-neutral best option.
riskdpo train --model smollm2-135m --dataset "$out/pairs_neutral.jsonl" --val "$out/pairs_neutral_val.jsonl" \
    --output-dir "$out/run_neutral" --epochs 2 --lr 5e-4 --beta 0.5 --batch-size 8 --seed 0 --eval-every 9 --no-progress

# Base and tuned on every held-out situation (300), the base first so that the comparison
# is a paired difference against it; then the same with the lotteries moved between option
# lines, so that a preferred label cannot pass for risk aversion.
models=(--model smollm2-135m --model "$out/run_neutral/final-model")
riskdpo eval-choices "${models[@]}" --situations "$out/situations.json" "${sheets[@]}" \
    --instruction "$instruction" --seed 0 --no-progress -o "$out/eval_logprob.json"
riskdpo eval-choices "${models[@]}" --situations "$out/situations.json" "${sheets[@]}" \
    --instruction "$instruction" --seed 0 --shuffle-options --no-progress -o "$out/eval_shuffled.json"
riskdpo report "$out/run_neutral" --eval "$out/eval_logprob.json" -o "$out/figures"
