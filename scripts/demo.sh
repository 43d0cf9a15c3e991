#!/usr/bin/env bash
# `make demo`: the whole system on its embedded defaults, on this machine:
#   sample camera (camsim, RTSP, target/samples/vtest.mp4 looping)
#   -> vigil-agent run (detection, calm events, clips cut without re-encoding, signed)
#   -> vigil-hub run (embedded MQTT broker, verification, SQLite, web page)
#   -> your browser at http://127.0.0.1:8080 (the demo login is printed).
# Ctrl-C stops everything cleanly; then every stored clip is verified offline.
# DEMO_SECONDS=N stops by itself after N seconds (used by the demo's test).
# DEMO_WEB_PORT (default 8080) and VIGIL_BIN (default target/release) can be changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${VIGIL_BIN:-$ROOT/target/release}"
DATA="${DEMO_DATA:-$ROOT/demo-data}"
WEB_PORT="${DEMO_WEB_PORT:-8080}"
DEMO_USER=demo
DEMO_PASSWORD=vigil-demo-2026
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS FILE PATTERN
    for _ in $(seq $(($1 * 10))); do grep -q "$3" "$2" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $WEB_PORT)) != 0)"; then
    echo "demo: port $WEB_PORT is taken (another demo still running?); stop it or set DEMO_WEB_PORT" >&2
    exit 1
fi
rm -rf "$DATA"
mkdir -p "$DATA"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
stopping=0
trap 'stopping=1; echo; echo "== Stopping (Ctrl-C)"' INT TERM

echo "== Sample camera (camsim) serving target/samples/vtest.mp4 in a loop"
"$BIN/vigil-agent" camsim --file target/samples/vtest.mp4 --port 0 --path /cam1 > "$DATA/camsim.out" 2> "$DATA/camsim.log" &
pids+=($!)
wait_for 10 "$DATA/camsim.out" serving || { echo "camsim did not start; see $DATA/camsim.log" >&2; exit 1; }
URL="$(awk '/serving/ {print $3}' "$DATA/camsim.out")"
echo "   $URL"

echo "== vigil-hub: embedded MQTT broker (TLS, per-agent logins and topics), SQLite index, web page"
MQTT_PORT="$(free_port)"
MQTTS_PORT="$(free_port)"
cat > "$DATA/hub.toml" <<TOML
data_dir = "$DATA/hub"
[broker]
mode = "embedded"
[broker.embedded]
listen = "127.0.0.1:$MQTT_PORT"
tls_listen = "127.0.0.1:$MQTTS_PORT"
[web]
listen = "127.0.0.1:$WEB_PORT"
TOML
"$BIN/vigil-hub" check-config --config "$DATA/hub.toml" > /dev/null
# The agent's key is made on the "edge box"; the hub enrols its public key, issues its
# MQTT login and (first time) makes the broker's TLS CA, whose PEM it prints for the box.
"$BIN/vigil-agent" keygen --key "$DATA/agent.key" | sed -n '/BEGIN/,$p' > "$DATA/agent.pem"
"$BIN/vigil-hub" agent add demo-agent --public-key "$DATA/agent.pem" --config "$DATA/hub.toml" \
    --ca-path "$DATA/hub/broker-tls/ca.pem" > "$DATA/enrol.txt"
UPLINK="$(sed -n '/^\[uplink\]$/,$p' "$DATA/enrol.txt" | tail -n +2)"
FINGERPRINT="$(sed -n 's/.*SHA-256 fingerprint \([0-9A-F:]*\)).*/\1/p' "$DATA/enrol.txt")"
printf '%s\n' "$DEMO_PASSWORD" | "$BIN/vigil-hub" user add "$DEMO_USER" --role operator,investigator,admin --config "$DATA/hub.toml" > /dev/null
"$BIN/vigil-hub" run --config "$DATA/hub.toml" > "$DATA/hub.log" 2>&1 &
HUB=$!
pids+=($HUB)
wait_for 20 "$DATA/hub.log" "web listening on" || { echo "the hub did not start; see $DATA/hub.log" >&2; exit 1; }
echo "   broker mqtts://127.0.0.1:$MQTTS_PORT (CA fingerprint $FINGERPRINT), data in $DATA/hub"

cat > "$DATA/agent.toml" <<TOML
agent_id = "demo-agent"
key = "$DATA/agent.key"
chain_dir = "$DATA/chain"
outbox_dir = "$DATA/outbox"
[detect]
model = "$ROOT/models/yolox_nano.toml"
[uplink]
$UPLINK
[[cameras]]
id = "cam1"
url = "$URL"
TOML
"$BIN/vigil-agent" check-config --config "$DATA/agent.toml" > /dev/null
echo "== vigil-agent run (detection at 5 fps, calm events, signed clips); log: $DATA/agent.log"
"$BIN/vigil-agent" run --config "$DATA/agent.toml" > "$DATA/agent.log" 2>&1 &
AGENT=$!
pids+=($AGENT)

cat <<MSG

   Open  http://127.0.0.1:$WEB_PORT   and log in as  $DEMO_USER / $DEMO_PASSWORD
   (operator + investigator + admin). People walk through within a few seconds;
   events appear live, clips are playable once stored and verified.
   Ctrl-C stops everything.

MSG

start=$(date +%s)
while [ "$stopping" = 0 ]; do
    if [ -n "${DEMO_SECONDS:-}" ] && [ $(($(date +%s) - start)) -ge "$DEMO_SECONDS" ]; then break; fi
    kill -0 "$AGENT" 2>/dev/null || { echo "the agent stopped; see $DATA/agent.log" >&2; break; }
    kill -0 "$HUB" 2>/dev/null || { echo "the hub stopped; see $DATA/hub.log" >&2; break; }
    sleep 0.5
done
web_ok=0
python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$WEB_PORT/login', timeout=5)" 2>/dev/null && web_ok=1

# Agent first (it finishes the clip in progress and hands it to the hub), then the hub.
kill -TERM "$AGENT" 2>/dev/null || true
wait "$AGENT" 2>/dev/null || true
sleep 1
kill -TERM "$HUB" 2>/dev/null || true
wait "$HUB" 2>/dev/null || true

DB="$DATA/hub/index.sqlite"
events=$(sqlite3 "$DB" "SELECT COUNT(*) FROM events WHERE phase='start'")
people=$(sqlite3 "$DB" "SELECT COUNT(*) FROM events WHERE phase='start' AND json_extract(json,'$.event.label')='person'")
clips=$(sqlite3 "$DB" "SELECT COUNT(*) FROM clips")
echo "== The hub received $events events ($people person) and stored $clips verified clips (alerts: $(sqlite3 "$DB" "SELECT COUNT(*) FROM alerts"))"
sqlite3 -separator '  ' "$DB" "SELECT json_extract(json,'$.event.start_utc'), camera_id, json_extract(json,'$.event.label'), printf('score %.2f', json_extract(json,'$.event.top_score')) FROM events WHERE phase='start' ORDER BY received_at LIMIT 10" | sed 's/^/   /'
[ "$web_ok" = 1 ] && echo "   web page answered at http://127.0.0.1:$WEB_PORT/login" || echo "   web page did NOT answer"

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
echo "Hub data (SQLite index, content-addressed clips) is under $DATA/hub/; logs in $DATA/."
[ "$bad" -eq 0 ] && [ "$web_ok" = 1 ] && [ "$people" -ge 1 ] && [ "$ok" -ge 1 ]
