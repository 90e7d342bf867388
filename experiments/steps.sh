# The steps of experiments/round2.sh and round3.sh, sourced by both (they set `out`, the
# output folder, and `root`, the repository). Every step is a riskdpo command with a fixed
# seed; a step whose output exists is skipped, so an interrupted script picks up where it
# stopped; each step's wall time goes to OUT/timings.tsv.
mkdir -p "$out/evals"
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
situations() {  # situations STEM COUNT SEED: OUT/STEM.json, low-stakes disagreements
    if missing "$1.json"; then
        riskdpo generate -o "$out/$1.xlsx" --sheet train --stakes low --situations "$2" --seed "$3"
        riskdpo convert "$out/$1.xlsx" -o "$out/$1.json"
    fi
}
pairs() {  # pairs STEM SITUATIONS INSTRUCTION [make-pairs options...]: OUT/STEM.jsonl, its _val and summary
    local stem=$1 source=$2 instruction=$3
    shift 3
    if missing "$stem.jsonl"; then
        riskdpo make-pairs "$out/$source.json" --instruction "$instruction" --val-fraction 0.1 --seed 0 \
            -o "$out/$stem.jsonl" "$@" | tee "$out/$stem.summary.txt"
    fi
}
train() {  # train ARM PAIRS_STEM CONFIG [train options...]: OUT/ARM
    local arm=$1 stem=$2 config=$3
    shift 3
    if missing "$arm/final-model"; then
        timed "train $arm" riskdpo train --config "$config" --dataset "$out/$stem.jsonl" \
            --val "$out/${stem}_val.jsonl" --output-dir "$out/$arm" --no-progress --overwrite "$@"
    fi
}
model_path() { if [ "$1" = base ]; then echo smollm2-135m; else echo "$out/$1/final-model"; fi; }
# The held-out sheets of OUT/heldout.json: the sample's five test sheets (60 situations each) and
# 600 fresh ones; heldout.json also holds the sample's train sheets, never scored.
samples=(--sheet test_low --sheet test_medium --sheet test_high --sheet test_astronomical --sheet test_cooperate)
fresh=(--sheet held_low --sheet held_medium --sheet held_high --sheet held_astronomical)
evaluate() {  # evaluate MODEL STEM [eval-choices options...]: OUT/evals/STEM-MODEL.json
    local name=$1 stem=$2
    shift 2
    if missing "evals/$stem-$name.json"; then
        timed "eval $stem $name" riskdpo eval-choices --model "$(model_path "$name")" --name "$name" \
            --situations "$out/heldout.json" --seed 0 --no-progress -o "$out/evals/$stem-$name.json" "$@"
    fi
}
# Label choice by log-probability: the primary measure with the lotteries shuffled over the
# option lines on all 900 held-out situations (the position control, seed 0: the same shuffle
# for every model), and as written on the sample's 300.
shuffled_eval() { evaluate "$1" shuffled --instruction "$label" --shuffle-options "${samples[@]}" "${fresh[@]}"; }
written_eval() { evaluate "$1" written --instruction "$label" "${samples[@]}"; }
# Reasoning answers, generated greedily and parsed, lotteries shuffled: a seeded sample of 150
# situations, the same 150 for every model (a reasoning answer costs about 3 s on this CPU).
reasoning_eval() {  # reasoning_eval MODEL [STEM SHEETS...]: default the sample's test sheets
    local name=$1 stem=${2:-reasoning} sheets=("${samples[@]}")
    if [ $# -gt 2 ]; then sheets=("${@:3}"); fi
    evaluate "$name" "$stem" --instruction "$reason" --mode generate --max-new-tokens 512 \
        --batch-size 16 --shuffle-options --sample 150 "${sheets[@]}"
}
