#!/usr/bin/env bash
# RESULTS.md, reproduced: does DPO make SmolLM2-135M-Instruct risk-averse, and how far
# does it generalise? CPU-sized (about 50 minutes on 2 cores); every step is a riskdpo
# command with a fixed seed.
#
#   bash experiments/results.sh [OUT_DIR]
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
riskdpo make-pairs "$out/situations.json" --sheet train --rejected bucket --instruction "$instruction" \
    --val-fraction 0.1 --seed 0 -o "$out/pairs_bucket.jsonl"
for sheet in test_low test_medium test_high test_astronomical test_cooperate; do sheets+=(--sheet "$sheet"); done

# Two LoRA DPO runs of the same size: rejected = risk-neutral best, and the bucket policy
# that mixes in the alpha = 0.10 best as rejected answers.
for policy in neutral bucket; do
  riskdpo train --model smollm2-135m --dataset "$out/pairs_$policy.jsonl" --val "$out/pairs_${policy}_val.jsonl" \
      --output-dir "$out/run_$policy" --epochs 2 --lr 5e-4 --beta 0.5 --batch-size 8 --seed 0 --eval-every 9 --no-progress
  riskdpo report "$out/run_$policy"
done

# Evaluation: base and both tuned models on every held-out situation (300), the base first so
# that the comparisons are paired differences against it.
models=(--model smollm2-135m --model "$out/run_neutral/final-model" --model "$out/run_bucket/final-model")
riskdpo eval-choices "${models[@]}" --situations "$out/situations.json" "${sheets[@]}" \
    --instruction "$instruction" --seed 0 --no-progress -o "$out/eval_logprob.json"
# Label-prior check: the same situations with the lotteries moved between option lines.
riskdpo eval-choices "${models[@]}" --situations "$out/situations.json" "${sheets[@]}" \
    --instruction "$instruction" --seed 0 --shuffle-options --no-progress -o "$out/eval_shuffled.json"
# Generate mode (greedy, parsed answers) on a seeded sample of 100.
riskdpo eval-choices --model smollm2-135m --model "$out/run_neutral/final-model" --situations "$out/situations.json" \
    "${sheets[@]}" --instruction "$instruction" --mode generate --max-new-tokens 16 --sample 100 --seed 0 \
    --no-progress -o "$out/eval_generate.json"
riskdpo report "$out/run_neutral" --eval "$out/eval_logprob.json" -o "$out/figures"
