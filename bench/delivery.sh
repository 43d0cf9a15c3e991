#!/usr/bin/env bash
# Delivery benchmarks (issue 6), called by bench/run.sh; prints a Markdown section.
#  1. Hub ingest throughput: N signed 1080p15 clips in an agent outbox, delivered by
#     `vigil-agent deliver` through Mosquitto to `vigil-hub run` (verification, store,
#     index, ack), vs the raw broker throughput for the same bytes in the same chunks and
#     window (`mqtt-throughput`: publisher -> Mosquitto -> counting subscriber).
#  2. Event latency: camsim -> `vigil-agent run` -> Mosquitto -> `vigil-hub run`, from the
#     agent's "Event" log line (spooled) to the hub's "Indexed an event" line, both JSON
#     logs on the same clock.
# Env: BIN (release binaries), QUICK, RUNS, WORK (scratch dir, removed by the caller).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/target/release}"
WORK="${WORK:?}"
QUICK="${QUICK:-}"
RUNS="${RUNS:-3}"
ORT="$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1"
if [ -n "$QUICK" ]; then NCLIPS=3; CLIPSECS=2; EVSECS=12; else NCLIPS=10; CLIPSECS=4; EVSECS=90; fi
D="$WORK/delivery"
mkdir -p "$D"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"


camsim target/samples/vtest_1080p15.mp4 hd; URL1080=$CAMSIM_URL
camsim target/samples/vtest.mp4 vt; URLVT=$CAMSIM_URL

# Mosquitto on loopback with its own config (bench/lib.sh).
mosquitto_broker "$D"
BROKER=$MQ_URL

signed_outbox "$URL1080" "$NCLIPS" "$CLIPSECS"

agent_config() { # agent_config FILE OUTBOX CAMERA_URL
    cat > "$1" <<TOML
agent_id = "bench"
key = "$KEY"
chain_dir = "$D/chain"
outbox_dir = "$2"
[detect]
model = "$ROOT/models/yolox_nano.toml"
[uplink]
broker = "$BROKER"
[[cameras]]
id = "cam1"
url = "$3"
post_roll_seconds = 1.0
TOML
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# 1. Raw broker vs hub ingest, RUNS times each.
: > "$D/raw"; : > "$D/hub"
for r in $(seq "$RUNS"); do
    "$BIN/mqtt-throughput" 127.0.0.1 "$MQ_PORT" "$D"/outbox0/clips/*/clip.mp4 \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' >> "$D/raw"
    rm -rf "$D/outbox" "$D/hub$r"; cp -r "$D/outbox0" "$D/outbox"
    agent_config "$D/deliver.toml" "$D/outbox" "rtsp://127.0.0.1:9/unused"
    broker_hub "$D/hub$r" "$D/hub$r.log" bench "$D/agent.pem" "$BROKER"
    "$BIN/vigil-agent" deliver --config "$D/deliver.toml" --timeout-seconds 300 > "$D/deliver.json" 2> "$D/deliver.log" \
        || { cat "$D/deliver.log" >&2; exit 1; }
    python3 - "$D/deliver.json" "$NCLIPS" >> "$D/hub" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["clips_stored"] == int(sys.argv[2]) and s["entries_left"] == 0, s
print(s["connected_ms"] / 1000)
PY
    stored=$(sqlite3 "$D/hub$r/index.sqlite" "SELECT count(*) FROM clips")
    [ "$stored" = "$NCLIPS" ] || { echo "bench: hub stored $stored of $NCLIPS clips" >&2; exit 1; }
    stop "$HUB_PID"
done
read -r raw_med raw_min raw_max < <(stats < "$D/raw")
read -r hub_med hub_min hub_max < <(stats < "$D/hub")
mbs() { awk -v b="$CLIP_BYTES" -v t="$1" 'BEGIN {printf "%.1f", b / 1e6 / t}'; }
cps() { awk -v n="$NCLIPS" -v t="$1" 'BEGIN {printf "%.1f", n / t}'; }

# 2. Event latency, agent spool -> hub index.
rm -rf "$D/evoutbox" "$D/evchain" "$D/hubev"
agent_config "$D/run.toml" "$D/evoutbox" "$URLVT"
sed -i "s#^chain_dir = .*#chain_dir = \"$D/evchain\"#" "$D/run.toml"
echo "max_clip_seconds = 30.0" >> "$D/run.toml" # clip availability is measured on 30 s clips
broker_hub "$D/hubev" "$D/hubev.log" bench "$D/agent.pem" "$BROKER"
ORT_DYLIB_PATH="$ORT" "$BIN/vigil-agent" --log-format json run --config "$D/run.toml" --seconds "$EVSECS" \
    > /dev/null 2> "$D/agentev.log"
sleep 1 # the last events' messages are on their way; the hub log is read after
stop "$HUB_PID"
read -r ev_n ev_p50 ev_p95 ev_max st_n st_p50 st_p95 st_max cl_n cl_p50 cl_p95 cl_max < <(python3 - "$D/agentev.log" "$D/hubev.log" "$D/hubev/index.sqlite" <<'PY'
import sys
sys.path.insert(0, "bench")
from benchlog import json_lines as lines, summary, ts_ms as ts
sent = {}
for o in lines(sys.argv[1]):
    f = o.get("fields", {})
    if f.get("message") == "Event":
        sent[(f["event"], f["phase"].lower())] = ts(o["timestamp"])
lat = []
for o in lines(sys.argv[2]):
    f = o.get("fields", {})
    if f.get("message") == "Indexed an event":
        k = (f["event"], f["phase"])
        if k in sent:
            lat.append(ts(o["timestamp"]) - sent[k])
import sqlite3
db = sqlite3.connect(sys.argv[3])
# First sighting (the decoded frame's wall time at the agent) -> start message indexed.
first = {r[0]: ts(r[1]) for r in db.execute(
    "SELECT event_id, json_extract(json, '$.event.start_utc') FROM events WHERE phase = 'start'")}
start_lat = []
sealing = {}
for o in lines(sys.argv[1]):
    f = o.get("fields", {})
    if f.get("message") == "Sealing a clip":
        sealing[f["clip"]] = ts(o["timestamp"])
clip_lat = []
for o in lines(sys.argv[2]):
    f = o.get("fields", {})
    if f.get("message") == "Indexed an event" and f["phase"] == "start" and f["event"] in first:
        start_lat.append(ts(o["timestamp"]) - first[f["event"]])
    if f.get("message") == "Stored a verified clip" and f["clip"] in sealing:
        clip_lat.append(ts(o["timestamp"]) - sealing[f["clip"]])
if not lat:
    sys.exit("bench: no event reached the hub")
print(*summary(lat, 1), *summary(start_lat, 1), *summary(clip_lat, 1))
PY
)

cat <<MD
## Delivery: hub ingest throughput vs the raw broker (Mosquitto on loopback)

$NCLIPS signed ${CLIPSECS} s 1080p15 clips (\`vigil-agent record --key\`), $CLIP_BYTES bytes in all, in an agent
outbox; Mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1) on loopback. Same 256 KiB chunks, at most 8 unacknowledged, in both rows.

| what | s for all clips (median, min–max) | MB/s | clips/s | ratio to raw broker |
| --- | --- | --- | --- | --- |
| raw broker: \`mqtt-throughput\` publisher → Mosquitto → subscriber counting bytes (baseline) | $raw_med ($raw_min–$raw_max) | $(mbs "$raw_med") | $(cps "$raw_med") | 1.00 |
| \`vigil-agent deliver\` → Mosquitto → \`vigil-hub run\`: manifest, missing, chunks to disk, reassemble, SHA-256 + every GOP hash + ECDSA, chain check, content-addressed store (fsync), SQLite index, \`stored\` ack, outbox delete | $hub_med ($hub_min–$hub_max) | $(mbs "$hub_med") | $(cps "$hub_med") | $(awk -v a="$hub_med" -v b="$raw_med" 'BEGIN {printf "%.2f", a / b}') |

Timed from the agent's broker connection to its empty outbox (\`connected_ms\` of \`vigil-agent deliver\`'s
summary); every run stores all $NCLIPS clips in a fresh hub data dir (checked in SQLite).

## Event latency and clip availability

camsim (vtest.mp4, 768x576@10, people walking) → \`vigil-agent run\` (detection at 5 fps) → Mosquitto →
\`vigil-hub run\`, ${EVSECS} s. Latency of each event message (start, update, end) from the agent's
\`Event\` log line (written when the message is spooled) to the hub's \`Indexed an event\` line (after the
SQLite insert); both JSON logs, same clock.

| what | n | p50 ms | p95 ms | max ms |
| --- | --- | --- | --- | --- |
| event message (start, update, end): agent spool → hub index | $ev_n | $ev_p50 | $ev_p95 | $ev_max |
| event start: first sighting (decoded frame at the agent, \`start_utc\`) → start message in the hub index | $st_n | $st_p50 | $st_p95 | $st_max |
| clip availability: post-roll arrived (agent \`Sealing a clip\`, clips of up to 30 s) → verified and stored at the hub | $cl_n | $cl_p50 | $cl_p95 | $cl_max |

Where an event's time goes before the first sighting: the RTSP jitter buffer (rtspsrc \`latency=200\` ms,
chosen over the 2 s default: it absorbs LAN jitter, and recording timing comes from RTP timestamps
either way) and decoding. After it: confirmation (\`confirm_hits\` = 3 of 5 analysed frames: at 5 fps at
least 400 ms of stream time), the inference itself, then MQTT and the hub (the first row). The web page's
live feed polls the index every 200 ms on top. Clips wait for their post-roll by design; the agent's event
loop looks for ready clips every 200 ms, which comes before the last row.

MD
