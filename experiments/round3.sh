#!/usr/bin/env bash
# RESULTS.md, round three: does more data teach SmolLM2-135M-Instruct the rule? Every model
# scored on round two's 900 held-out situations (experiments/round2_outputs/heldout.json)
# with round two's measures. In priority order (an interrupted run picks up where it
# stopped: a step whose output exists is skipped; each step's wall time goes to
# OUT/timings.tsv; every step has a fixed seed):
#   0. the base model scored again: round two scored its models with the label rule of
#      before 2026-12-04 (log p of the label's tokens then EOS), round three scores each
#      label as a complete answer (riskdpo.evaluation.choices), and models are compared
#      only under one rule;
#   1. seed variance: round two's arm 2 (position-balanced label DPO, 288 situations,
#      1,029 pairs) with training seeds 0, 1 and 2 (seed 0 is round two's run trained
#      again, since its weights were not kept);
#   2. data scaling: the same recipe on 1,000 and 3,000 fresh low-stakes disagreements,
#      one rotation per situation (make-pairs --balance-positions 1: chosen-line counts
#      within one of each other), one epoch; and on 100, every rotation (as the 288 arm),
#      one epoch (a third of the 288 arm's steps);
#   3. the label evaluation as written (secondary) for each of those models;
#   4. round two's arm 4: arm 3 (SFT on verified reasoning) retrained, since its weights
#      were not kept, then DPO + NLL on reasoning pairs from it at micro-batch 4, with its
#      reasoning evaluations (150 sample + 150 fresh situations) and its label evaluation;
#   5. round two's saved reasoning answers (base, arm 3) re-read by the current answer reader.
# On round three's 2-core AMD EPYC, idle, with OMP_NUM_THREADS=2: about 35 minutes per 288- or
# 1,000-situation arm (training + shuffled evaluation; a shuffled evaluation alone about 6),
# about 2 hours for the 3,000 one; step 4 about 1 hour 45 minutes (arm 3's SFT 49 minutes, arm 4
# 36 minutes with 22.1 GB resident at its peak, its three evaluations 51 minutes, 42 of them beside CI).
#
# The PART arguments (base seed0 seed1 seed2 scale1000 scale100 scale3000 written arm4 reread; default all, in that
# order) run only those parts after the data step, so that parts can run side by side as
# separate processes on a busy machine (make the data first: run with the part "data").
#
#   bash experiments/round3.sh [OUT_DIR [PART...]]
#   python experiments/round3_summary.py OUT_DIR [FIGURE_DIR]   # the round-three tables of RESULTS.md
set -euo pipefail
out=${1:-results-round3}
parts=("${@:2}")
[ ${#parts[@]} -gt 0 ] || parts=(base seed0 seed1 seed2 scale1000 scale100 scale3000 written arm4 reread)
root="$(cd "$(dirname "$0")/.." && pwd)"
configs="$root/configs/round3"
source "$root/experiments/steps.sh"
wanted() { [[ " ${parts[*]} " == *" $1 "* ]]; }  # is part $1 to run?

# Data. Held-out: round two's 900 situations (the sample's five test sheets, 600 fresh ones
# of seeds 41-44). Training: round two's 320 (seed 31; 288 train + 32 validation) for the
# seed arms and arm 4; for scaling, 1,111 (seed 32), 3,333 (seed 33) and 111 (seed 34) fresh
# low-stakes disagreements, of which make-pairs holds back round(0.1 n) = 111, 333 and 11 for
# validation.
if missing heldout.json; then cp "$root/experiments/round2_outputs/heldout.json" "$out/heldout.json"; fi
situations train 320 31
situations train_1000 1111 32
situations train_3000 3333 33
situations train_100 111 34
pairs label_balanced train "$label" --balance-positions 5  # round two's file (same sha256)
pairs label_balanced_1000 train_1000 "$label" --balance-positions 1
pairs label_balanced_3000 train_3000 "$label" --balance-positions 1
pairs label_balanced_100 train_100 "$label" --balance-positions 5

pairs cot train "$reason" --response cot
if missing cot_half.jsonl; then
    head -n 144 "$out/cot.jsonl" > "$out/cot_half.jsonl"
    cp "$out/cot_val.jsonl" "$out/cot_half_val.jsonl"
fi

# 0. The base model, scored under the current label rule (round two's base report predates it).
if wanted base; then shuffled_eval base; fi
# 1. Seed variance: seed 0 again (round two's weights were not kept, its report predates the rule).
for seed in 0 1 2; do
    if wanted "seed$seed"; then
        train "label_dpo_balanced_seed$seed" label_balanced "$configs/label_dpo_balanced_seed$seed.yaml"
        shuffled_eval "label_dpo_balanced_seed$seed"
    fi
done
# 2. Data scaling.
for size in 1000 100 3000; do
    if wanted "scale$size"; then
        train "label_dpo_balanced_$size" "label_balanced_$size" "$configs/label_dpo_balanced_$size.yaml"
        shuffled_eval "label_dpo_balanced_$size"
    fi
done
# 3. As written (secondary), for the models trained so far.
if wanted written; then
    for arm in base label_dpo_balanced_seed0 label_dpo_balanced_seed1 label_dpo_balanced_seed2 label_dpo_balanced_1000 label_dpo_balanced_100 label_dpo_balanced_3000; do
        if [ "$arm" = base ] || ! missing "$arm/final-model"; then written_eval "$arm"; fi
    done
fi
# 4. Round two's arm 4, with arm 3 retrained first (its config and pairs as in round two).
if wanted arm4; then
    train cot_sft cot "$root/configs/round2/cot_sft.yaml"
    train cot_sft_dpo_nll cot_half "$root/configs/round2/cot_sft_dpo_nll.yaml" --model "$out/cot_sft/final-model"
    reasoning_eval cot_sft_dpo_nll reasoning "${samples[@]}"
    reasoning_eval cot_sft_dpo_nll reasoning_fresh "${fresh[@]}"
    shuffled_eval cot_sft_dpo_nll
fi
# 5. Round two's saved reasoning answers (the base's, arm 3's) read again by the current answer
# reader, no model run, so that they stand beside arm 4's read by the same reader.
reread() {  # reread MODEL STEM SHEETS...: OUT/evals/STEM-MODEL.json from round two's STEM-MODEL.csv
    local name=$1 stem=$2
    shift 2
    if missing "evals/$stem-$name.json"; then
        timed "reread $stem $name" riskdpo eval-choices --answers "$root/experiments/round2_outputs/evals/$stem-$name.csv" \
            --name "$name" --situations "$out/heldout.json" --shuffle-options --seed 0 --sample 150 --no-progress \
            -o "$out/evals/$stem-$name.json" "$@"
    fi
}
if wanted reread; then
    reread base reasoning "${samples[@]}"
    reread cot_sft reasoning "${samples[@]}"
    reread cot_sft reasoning_fresh "${fresh[@]}"
fi
