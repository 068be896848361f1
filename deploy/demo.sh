#!/usr/bin/env bash
# `make run`: start a node on loopback, push a phantom echo study into it with dcmtk's
# storescu, show what it holds, and keep it running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=${ECHO_NODE_DEMO_DIR:-$PWD/demo}
PORT=${ECHO_NODE_DIMSE_PORT:-11112}

rm -rf "$DEMO"
mkdir -p "$DEMO"
export ECHO_NODE_DATA_DIR="$DEMO/data" ECHO_NODE_BIND=127.0.0.1 ECHO_NODE_DIMSE_PORT="$PORT"
export ECHO_NODE_HTTP_ENABLED=${ECHO_NODE_HTTP_ENABLED:-false}
export TCP_NODELAY=1  # dcmtk stalls ~50 ms per message without it

echo "== generating a phantom echo study (PLAX, A4C, CW and PW Doppler) in $DEMO/phantom"
"$BIN/echo-node" phantom --out "$DEMO/phantom" --seed 1

echo "== starting the node: AE ECHONODE on 127.0.0.1:$PORT, data in $DEMO/data"
"$BIN/echo-node" serve >"$DEMO/node.log" 2>&1 &
NODE=$!
trap 'kill -TERM $NODE 2>/dev/null; wait $NODE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  echoscu -aec ECHONODE 127.0.0.1 "$PORT" 2>/dev/null && break
  kill -0 $NODE 2>/dev/null || { cat "$DEMO/node.log"; exit 1; }
  sleep 0.2
done
echo "== echoscu: the node answers C-ECHO"

echo "== pushing the study with storescu"
find "$DEMO/phantom" -name '*.dcm' -print0 | xargs -0 storescu -xy -aet DEMOSCU -aec ECHONODE 127.0.0.1 "$PORT"

"$BIN/echo-node" studies
"$BIN/echo-node" status
if "$BIN/echo-node" --help | grep -q ' analyze '; then
  for clip in $(find "$DEMO/data/instances" -name '*.dcm' | sort); do
    echo "== echo-node analyze $(basename "$clip")"
    "$BIN/echo-node" analyze "$clip" || true
  done
fi

echo
echo "The node is running (log: $DEMO/node.log). Point a scanner or PACS at"
echo "AE title ECHONODE, host 127.0.0.1, port $PORT. Ctrl-C stops it."
wait $NODE
