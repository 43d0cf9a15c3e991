#!/usr/bin/env bash
# `make demo`: what Vigil can run end to end today, on its embedded defaults.
#   sample camera (camsim, RTSP) -> agent detection (ONNX, live) -> signed clip -> vigil-verify
# The hub (MQTT ingest, web page) is not built yet; this script says so and stops there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/target/release"
DATA="$ROOT/demo-data"
FRAMES="${DEMO_FRAMES:-30}"
mkdir -p "$DATA"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "== Starting the sample camera (camsim) on the sample footage"
"$BIN/vigil-agent" camsim --file target/samples/vtest.mp4 --port 0 --path /cam1 > "$DATA/camsim.out" 2> "$DATA/camsim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q serving "$DATA/camsim.out" 2>/dev/null && break; sleep 0.1; done
URL="$(awk '/serving/ {print $3}' "$DATA/camsim.out")"
[ -n "$URL" ] || { echo "camsim did not start; see $DATA/camsim.log"; exit 1; }
echo "   camera: $URL"

echo "== Agent detection on the live camera ($FRAMES frames at 5 fps, YOLOX-Nano via ONNX Runtime)"
"$BIN/vigil-agent" detect --model models/yolox_nano.toml --input "$URL" --fps 5 --frames "$FRAMES" 2>"$DATA/detect.log" \
  | tee "$DATA/detections.jsonl" \
  | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    people = [x for x in d["detections"] if x["label"] == "person"]
    print(f"   t={d[\"pts_ms\"]/1000:7.1f}s  persons={len(people)}  " + " ".join(f"{x[\"score\"]:.2f}" for x in people[:6]))
'

echo "== Recording a signed 10 s clip (remux only, ECDSA P-256, per-camera chain)"
[ -f "$DATA/agent.key" ] || "$BIN/vigil-agent" keygen --key "$DATA/agent.key" > "$DATA/agent.pub.txt"
OUT="$DATA/clips/$(date +%Y%m%dT%H%M%S)"
mkdir -p "$DATA/clips"
"$BIN/vigil-agent" record --url "$URL" --seconds 10 --out "$OUT" --key "$DATA/agent.key" --state-dir "$DATA/chain" 2>"$DATA/record.log"

echo "== Verifying it offline, as an investigator would"
"$BIN/vigil-verify" "$OUT" --trust "$OUT/pubkey.pem" | tail -n 3

cat <<MSG

Done. The clip, its signed manifest and the chain state are under $DATA/.
Not in this demo yet: the hub (MQTT delivery, web page for operators); see README.
MSG
