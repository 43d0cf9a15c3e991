#!/usr/bin/env bash
# `make demo`: what Vigil runs end to end today:
#   sample camera (camsim, RTSP) -> vigil-agent run (detection, calm events, signed clips)
#   -> MQTT (a private Mosquitto: the hub's embedded broker is not built yet) -> vigil-hub
#   (verifies, stores, indexes) -> vigil-verify on every stored clip, as an investigator would.
# The hub's web page is not built yet; this script says so at the end.
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

echo "== MQTT broker (private Mosquitto on a free port) and vigil-hub"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$DATA/mosquitto.conf"
/usr/sbin/mosquitto -c "$DATA/mosquitto.conf" > "$DATA/mosquitto.log" 2>&1 &
pids+=($!)
rm -rf "$DATA/hub" "$DATA/outbox" "$DATA/chain" "$DATA/verify" "$DATA/agent.key"
"$BIN/vigil-agent" keygen --key "$DATA/agent.key" | sed -n '/BEGIN/,$p' > "$DATA/agent.pem"
"$BIN/vigil-hub" agent add demo-agent --public-key "$DATA/agent.pem" --data-dir "$DATA/hub" > /dev/null
"$BIN/vigil-hub" run --web-listen 127.0.0.1:0 --broker "mqtt://127.0.0.1:$PORT" --data-dir "$DATA/hub" > "$DATA/hub.log" 2>&1 &
pids+=($!)
echo "   broker mqtt://127.0.0.1:$PORT, hub data in $DATA/hub"
cat > "$DATA/agent.toml" <<TOML
agent_id = "demo-agent"
key = "$DATA/agent.key"
chain_dir = "$DATA/chain"
outbox_dir = "$DATA/outbox"
[detect]
model = "$ROOT/models/yolox_nano.toml"
[uplink]
broker = "mqtt://127.0.0.1:$PORT"
[[cameras]]
id = "cam1"
url = "$URL"
TOML

echo "== vigil-agent run for ${SECONDS_TO_RUN} s (detection at 5 fps, events, signed clips); log: $DATA/agent.log"
"$BIN/vigil-agent" run --config "$DATA/agent.toml" --seconds "$SECONDS_TO_RUN" > "$DATA/agent.log" 2>&1 &
AGENT=$!
pids+=($AGENT)
wait "$AGENT" || true

DB="$DATA/hub/index.sqlite"
sleep 2
events=$(sqlite3 "$DB" "SELECT COUNT(*) FROM events WHERE phase='start'")
clips=$(sqlite3 "$DB" "SELECT COUNT(*) FROM clips")
echo "== The hub received $events events and stored $clips verified clips (alerts: $(sqlite3 "$DB" "SELECT COUNT(*) FROM alerts"))"
sqlite3 -separator '  ' "$DB" "SELECT json_extract(json,'$.event.start_utc'), camera_id, json_extract(json,'$.event.label'), printf('score %.2f', json_extract(json,'$.event.top_score')) FROM events WHERE phase='start' ORDER BY received_at LIMIT 20" | sed 's/^/   /'

echo "== Verifying every stored clip offline (vigil-verify --trust the agent's key)"
ok=0; bad=0
while IFS='|' read -r clip_id path; do
    d="$DATA/verify/$clip_id"; mkdir -p "$d"
    cp "$DATA/hub/$path" "$d/clip.mp4" 2>/dev/null || cp "$path" "$d/clip.mp4"
    sqlite3 "$DB" "SELECT writefile('$d/manifest.json', manifest) FROM clips WHERE clip_id='$clip_id'" > /dev/null
    sqlite3 "$DB" "SELECT signature FROM clips WHERE clip_id='$clip_id'" > "$d/manifest.sig"
    cp "$DATA/agent.pem" "$d/pubkey.pem"
    if "$BIN/vigil-verify" "$d" --trust "$DATA/agent.pem" > /dev/null; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "   NOT OK: $clip_id"; fi
done < <(sqlite3 "$DB" "SELECT clip_id, path FROM clips ORDER BY seq")
echo "   $ok OK, $bad not OK"

cat <<MSG

Hub data (SQLite index, content-addressed clips) is under $DATA/hub/.
Not in this demo yet: the hub's embedded broker and its web page for operators; see README.
MSG
[ "$bad" -eq 0 ]
