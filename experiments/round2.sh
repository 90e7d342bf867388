#!/usr/bin/env bash
# RESULTS.md, round two: which recipe makes SmolLM2-135M-Instruct risk-averse beyond a
# position habit? Four arms trained on the same 288 low-stakes situations, every model
# scored on the same held-out situations, one model per eval-choices call (the paired
# comparisons against the base are recomputed per situation by experiments/round2_summary.py).
# Sized for a 2-core CPU: about two hours. Every step has a fixed seed; a step whose
# output exists is skipped, so an interrupted run picks up where it stopped; each step's
# wall time goes to OUT/timings.tsv.
#
#   bash experiments/round2.sh [OUT_DIR]
#   python experiments/round2_summary.py OUT_DIR [FIGURE_DIR]   # the tables of RESULTS.md
set -euo pipefail
out=${1:-results-round2}
root="$(cd "$(dirname "$0")/.." && pwd)"
configs="$root/configs/round2"
source "$root/experiments/steps.sh"

# Data. Training: 320 low-stakes disagreements (riskdpo generate, seed 31), 10% of them
# held back by situation as validation pairs. Held-out tests, never used for training or
# for choosing settings: the five test sheets of data/sample.xlsx (60 situations each:
# low, medium, high, astronomical stakes, cooperate framing) and 600 fresh situations,
# 150 per stake level (seeds 41-44).
situations train 320 31
if missing heldout.json; then
    seed=41
    for stakes in low medium high astronomical; do
        append=(); [ "$stakes" = low ] || append=(--append)
        riskdpo generate -o "$out/heldout.xlsx" --sheet "held_$stakes" --stakes "$stakes" \
            --situations 150 --seed "$seed" "${append[@]}"
        seed=$((seed + 1))
    done
    riskdpo convert "$root/data/sample.xlsx" "$out/heldout.xlsx" -o "$out/heldout.json"
fi

# Pairs: labels as written (arm 1), every rotation of the lotteries over the option lines
# (arm 2), and verified reasoning (arms 3 and 4).
pairs label train "$label"
pairs label_balanced train "$label" --balance-positions 5
pairs cot train "$reason" --response cot
# Arm 4's pairs: the first half of arm 3's (144), to fit the session.
if missing cot_half.jsonl; then
    head -n 144 "$out/cot.jsonl" > "$out/cot_half.jsonl"
    cp "$out/cot_val.jsonl" "$out/cot_half_val.jsonl"
fi

# Label choice by log-probability, lotteries shuffled on all 900 held-out situations and as
# written on the sample's 300; reasoning answers on 150 of the sample's test situations
# (experiments/steps.sh).
label_evals() { shuffled_eval "$1"; written_eval "$1"; }

label_evals base
train label_dpo label "$configs/label_dpo.yaml"
label_evals label_dpo
train label_dpo_balanced label_balanced "$configs/label_dpo_balanced.yaml"
label_evals label_dpo_balanced
train cot_sft cot "$configs/cot_sft.yaml"
reasoning_eval cot_sft
# The reasoning arm on 150 of the 600 fresh situations too (all four stake levels).
reasoning_eval cot_sft reasoning_fresh "${fresh[@]}"
reasoning_eval base
# The reasoning arm answering by label: did reasoning change the immediate choice?
shuffled_eval cot_sft
# Arm 4 (not in RESULTS.md: at batch 8 it was killed for memory at 24 GiB, and a step of 8
# reasoning pairs took about 70 s, so it did not fit the session; its config now takes
# micro-batches of 4); run it with ROUND2_ARM4=1.
if [ "${ROUND2_ARM4:-0}" = 1 ]; then
    train cot_sft_dpo_nll cot_half "$configs/cot_sft_dpo_nll.yaml" --model "$out/cot_sft/final-model"
    reasoning_eval cot_sft_dpo_nll
    shuffled_eval cot_sft_dpo_nll
fi
