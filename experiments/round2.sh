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
mkdir -p "$out/evals"
root="$(cd "$(dirname "$0")/.." && pwd)"
configs="$root/configs/round2"
label="Output the label of your chosen option only."
reason="Think step by step, then give your answer as: Answer: (label)."
missing() { [ ! -e "$out/$1" ]; }  # is OUT/$1 still to make?
timed() {  # timed STEP COMMAND...: run it, append "STEP<TAB>seconds" to OUT/timings.tsv
    local step=$1 start
    shift
    start=$(date +%s)
    "$@"
    printf '%s\t%s\n' "$step" "$(($(date +%s) - start))" >> "$out/timings.tsv"
}

# Data. Training: 320 low-stakes disagreements (riskdpo generate, seed 31), 10% of them
# held back by situation as validation pairs. Held-out tests, never used for training or
# for choosing settings: the five test sheets of data/sample.xlsx (60 situations each:
# low, medium, high, astronomical stakes, cooperate framing) and 600 fresh situations,
# 150 per stake level (seeds 41-44).
if missing train.json; then
    riskdpo generate -o "$out/train.xlsx" --sheet train --stakes low --situations 320 --seed 31
    riskdpo convert "$out/train.xlsx" -o "$out/train.json"
fi
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
pairs() {  # pairs STEM INSTRUCTION [make-pairs options...]
    local stem=$1 instruction=$2
    shift 2
    if missing "$stem.jsonl"; then
        riskdpo make-pairs "$out/train.json" --instruction "$instruction" --val-fraction 0.1 --seed 0 \
            -o "$out/$stem.jsonl" "$@"
    fi
}
pairs label "$label"
pairs label_balanced "$label" --balance-positions 5
pairs cot "$reason" --response cot
# Arm 4's pairs: the first half of arm 3's (144), to fit the session.
if missing cot_half.jsonl; then
    head -n 144 "$out/cot.jsonl" > "$out/cot_half.jsonl"
    cp "$out/cot_val.jsonl" "$out/cot_half_val.jsonl"
fi

train() {  # train ARM PAIRS_STEM [train options...]
    local arm=$1 stem=$2
    shift 2
    if missing "$arm/final-model"; then
        timed "train $arm" riskdpo train --config "$configs/$arm.yaml" --dataset "$out/$stem.jsonl" \
            --val "$out/${stem}_val.jsonl" --output-dir "$out/$arm" --no-progress --overwrite "$@"
    fi
}
model_path() { if [ "$1" = base ]; then echo smollm2-135m; else echo "$out/$1/final-model"; fi; }
samples=(--sheet test_low --sheet test_medium --sheet test_high --sheet test_astronomical --sheet test_cooperate)
fresh=(--sheet held_low --sheet held_medium --sheet held_high --sheet held_astronomical)  # heldout.json also holds the sample's train sheets: never scored
evaluate() {  # evaluate MODEL STEM [eval-choices options...]: OUT/evals/STEM-MODEL.json
    local name=$1 stem=$2
    shift 2
    if missing "evals/$stem-$name.json"; then
        timed "eval $stem $name" riskdpo eval-choices --model "$(model_path "$name")" --name "$name" \
            --situations "$out/heldout.json" --seed 0 --no-progress -o "$out/evals/$stem-$name.json" "$@"
    fi
}
# Label choice by log-probability: with the lotteries shuffled over the option lines on
# all 900 held-out situations (the position control), and as written on the sample's 300.
shuffled_eval() { evaluate "$1" shuffled --instruction "$label" --shuffle-options "${samples[@]}" "${fresh[@]}"; }
label_evals() {
    shuffled_eval "$1"
    evaluate "$1" written --instruction "$label" "${samples[@]}"
}
# Reasoning answers, generated greedily and parsed, lotteries shuffled: a seeded sample of
# 150 of the sample's 300 test situations, the same 150 for every model (a reasoning answer
# costs about 3 s on this CPU).
reasoning_eval() {  # reasoning_eval MODEL [STEM SHEETS...]: default the sample's test sheets
    local name=$1 stem=${2:-reasoning} sheets=("${samples[@]}")
    if [ $# -gt 2 ]; then sheets=("${@:3}"); fi
    evaluate "$name" "$stem" --instruction "$reason" --mode generate --max-new-tokens 512 \
        --batch-size 16 --shuffle-options --sample 150 "${sheets[@]}"
}

label_evals base
train label_dpo label
label_evals label_dpo
train label_dpo_balanced label_balanced
label_evals label_dpo_balanced
train cot_sft cot
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
    train cot_sft_dpo_nll cot_half --model "$out/cot_sft/final-model"
    reasoning_eval cot_sft_dpo_nll
    shuffled_eval cot_sft_dpo_nll
fi
