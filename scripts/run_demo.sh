#!/usr/bin/env bash
# The main job end to end: start a server, wait for SERVING, generate pairs for the sample
# document, print a few, write all of them to JSONL, stop the server. Nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-.cache/tiny-model}
PORT=${PORT:-50051}
OUT=${OUT:-out/pairs.jsonl}
LOG=${LOG:-out/server.log}
mkdir -p "$(dirname "$OUT")" "$(dirname "$LOG")"

server_args=(--model "$MODEL" --host 127.0.0.1 --port "$PORT")
if [ "$MODEL" = .cache/tiny-model ]; then
  server_args+=(--max-model-len 2048)
fi
# Extra server flags, e.g. SERVER_ARGS="--max-model-len 4096" for a larger model on a small KV cache.
read -r -a extra_args <<<"${SERVER_ARGS:-}"
server_args+=("${extra_args[@]}")

echo "run: starting the server on $MODEL at 127.0.0.1:$PORT (log: $LOG)"
"$PY" -m synthqa.server "${server_args[@]}" >"$LOG" 2>&1 &
server_pid=$!
stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap stop_server EXIT

client=("$PY" -m synthqa.client.cli --target "127.0.0.1:$PORT")
until "${client[@]}" wait --for 2 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run: the server exited during start-up; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
done
echo "run: server is SERVING"
# A smaller chunk than the largest that fits, so the sample shows several chunks at work.
"${client[@]}" generate samples/lighthouses.txt --out "$OUT" --show 6 --max-chunk-tokens 384 \
  --num-pairs 4
echo "run: $(wc -l <"$OUT") pairs in $OUT"
if [ "$MODEL" = .cache/tiny-model ]; then
  echo "run: the tiny model has random weights, so these pairs are noise by design; for real"
  echo "     ones: make run MODEL=<a Hugging Face model name or path>"
fi
echo "run: the CLI is .venv/bin/synthqa (or: source .venv/bin/activate; synthqa --help)"
