#!/usr/bin/env bash
# `make demo`: what Vigil runs end to end today, on its embedded defaults:
#   sample camera (camsim, RTSP) -> vigil-agent run (detection, calm events, signed clips
#   into the outbox) -> vigil-verify on every clip, as an investigator would.
# The hub (MQTT delivery, web page) is not built yet; this script says so at the end.
# DEMO_SECONDS=N stops by itself after N seconds (default: 60); Ctrl-C stops earlier.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/target/release"
DATA="$ROOT/demo-data"
SECONDS_TO_RUN="${DEMO_SECONDS:-60}"
mkdir -p "$DATA"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'echo; echo "== Stopping (Ctrl-C)"; kill -TERM "${AGENT:-0}" 2>/dev/null || true' INT

echo "== Sample camera (camsim) serving target/samples/vtest.mp4"
"$BIN/vigil-agent" camsim --file target/samples/vtest.mp4 --port 0 --path /cam1 > "$DATA/camsim.out" 2> "$DATA/camsim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q serving "$DATA/camsim.out" 2>/dev/null && break; sleep 0.1; done
URL="$(awk '/serving/ {print $3}' "$DATA/camsim.out")"
[ -n "$URL" ] || { echo "camsim did not start; see $DATA/camsim.log"; exit 1; }
echo "   $URL"

[ -f "$DATA/agent.key" ] || "$BIN/vigil-agent" keygen --key "$DATA/agent.key" > "$DATA/agent.pub.txt"
rm -rf "$DATA/outbox"
cat > "$DATA/agent.toml" <<TOML
agent_id = "demo-agent"
key = "$DATA/agent.key"
chain_dir = "$DATA/chain"
outbox_dir = "$DATA/outbox"
[detect]
model = "$ROOT/models/yolox_nano.toml"
[[cameras]]
id = "cam1"
url = "$URL"
TOML

echo "== vigil-agent run for ${SECONDS_TO_RUN} s (detection at 5 fps, events, signed clips); log: $DATA/agent.log"
"$BIN/vigil-agent" run --config "$DATA/agent.toml" --seconds "$SECONDS_TO_RUN" > "$DATA/agent.log" 2>&1 &
AGENT=$!
pids+=($AGENT)
wait "$AGENT" || true

events=$(ls "$DATA/outbox/events" 2>/dev/null | grep -c start || true)
clips=$(ls "$DATA/outbox/clips" 2>/dev/null | wc -l)
echo "== $events events started, $clips signed clips in $DATA/outbox"
python3 - "$DATA/outbox/events" <<'PY'
import json, os, sys
d = sys.argv[1]
for name in sorted(os.listdir(d))[:200]:
    if name.endswith("start.json"):
        e = json.load(open(os.path.join(d, name)))["event"]
        print(f"   {e['start_utc']}  {e['camera_id']}  {e['label']:<8} score {e['top_score']:.2f}  zones {e['zones'] or '-'}")
PY

echo "== Verifying every clip offline (vigil-verify --trust the agent's key)"
ok=0; bad=0
for c in "$DATA"/outbox/clips/*/; do
    [ -d "$c" ] || continue
    if "$BIN/vigil-verify" "$c" --trust "$c/pubkey.pem" > /dev/null; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "   NOT OK: $c"; fi
done
echo "   $ok OK, $bad not OK"

cat <<MSG

Clips, manifests and event snapshots are under $DATA/outbox/.
Not in this demo yet: the hub (MQTT delivery, web page for operators); see README.
MSG
[ "$bad" -eq 0 ]
