#!/usr/bin/env bash
# eval-choices in generate mode through `transformers serve` (continuous batching on) against the same
# evaluation with the model loaded locally: wall seconds, and CPU seconds of the server's processes,
# the client and the local run. Greedy, so both must give the same answers (printed at the end).
#
#   bash benchmarks/endpoint_vs_local.sh SITUATIONS.json [N situations] [max new tokens] [concurrency = batch size]
#
# The model is the bundled SmolLM2 (MODEL=... to change); OMP_NUM_THREADS applies to the server and the
# local run alike. Needs the dev extra (transformers[serving], openai) and GNU time.
set -euo pipefail
situations=$1; n=${2:-16}; tokens=${3:-48}; concurrency=${4:-8}
model=${MODEL:-$(python -c "from riskdpo.models.smollm import smollm2_dir; print(smollm2_dir())")}
out=$(mktemp -d); port=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
common=(--situations "$situations" --sample "$n" --mode generate --max-new-tokens "$tokens" --no-progress --bootstrap 0)
group_cpu() { # user+system seconds of the processes in process group $1
  local ticks=0; for p in $(pgrep -g "$1"); do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo $((ticks / $(getconf CLK_TCK))); }
setsid transformers serve "$model" --host 127.0.0.1 --port "$port" --continuous-batching --log-level warning >"$out/serve.log" 2>&1 &
server=$!
trap 'kill -TERM -- -$server 2>/dev/null || true' EXIT
until curl -s -m 5 "127.0.0.1:$port/health" | grep -q ok; do sleep 2; done
before=$(group_cpu $server); start=$(date +%s.%N)
/usr/bin/time -f "endpoint client: wall %e s, cpu %U + %S s" riskdpo eval-choices --endpoint "http://127.0.0.1:$port/v1" \
  --model "$model" "${common[@]}" --concurrency "$concurrency" -o "$out/endpoint/report.json" >"$out/endpoint.log" 2>&1
echo "endpoint: $n answers, wall $(echo "$(date +%s.%N) - $start" | bc) s, server cpu $(($(group_cpu $server) - before)) s"
tail -1 "$out/endpoint.log"
kill -TERM -- -$server; wait $server 2>/dev/null || true
/usr/bin/time -f "local: wall %e s, cpu %U + %S s" riskdpo eval-choices --model "$model" "${common[@]}" \
  --batch-size "$concurrency" -o "$out/local/report.json" >"$out/local.log" 2>&1
tail -1 "$out/local.log"
python - "$out" <<'P'
import csv, sys
rows = [list(csv.DictReader(open(f"{sys.argv[1]}/{kind}/report.csv"))) for kind in ("endpoint", "local")]
print("same answer text:", sum(a["answer"] == b["answer"] for a, b in zip(*rows)), "of", len(rows[0]))
P
