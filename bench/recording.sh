#!/usr/bin/env bash
# Continuous recording benchmarks (issue 19), called by bench/run.sh; prints a Markdown section.
#  1. Cost of recording: `vigil-agent run` with NCAM cameras (768x576@10, detection at 2 fps,
#     the box's configuration) with `record = true` vs `record = false`, alternating, RUNS
#     times: CPU seconds (user + sys), bytes the process wrote to the file system, and the
#     recording store's size.
#  2. Manifests at the hub and pulling a window: one 1080p15 camera recorded by an agent
#     connected to `vigil-hub run` (embedded broker) for WINDOW_S + a piece; the hub's bytes
#     of piece manifests per camera-day (vs the video they describe); then an investigator's
#     pull of a WINDOW_S window through the web API, timed to `complete` and to every
#     piece fetched, vs the same bytes fetched over loopback from a plain HTTP server.
# Env: BIN (release binaries), QUICK, RUNS, WORK (scratch dir, removed by the caller).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/target/release}"
WORK="${WORK:?}"
QUICK="${QUICK:-}"
RUNS="${RUNS:-3}"
if [ -n "$QUICK" ]; then NCAM=2; COSTSECS=5; PIECE=2; WINDOW_S=6; else NCAM=4; COSTSECS=60; PIECE=60; WINDOW_S=600; fi
D="$WORK/recording"
mkdir -p "$D"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export ORT_DYLIB_PATH="$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1"
"$BIN/vigil-agent" keygen --key "$D/agent.key" | sed -n '/BEGIN/,$p' > "$D/agent.pem"

# 1. Recording on vs off.
camsim target/samples/vtest.mp4 cost; URL=$CAMSIM_URL
# run_agent RECORD: prints "CPU_SECONDS WRITTEN_BYTES STORE_BYTES" of a fresh run.
run_agent() {
    rm -rf "$D/cost"; mkdir -p "$D/cost"
    {
        printf 'agent_id = "bench"\nkey = "%s/agent.key"\nchain_dir = "%s/cost/chain"\noutbox_dir = "%s/cost/outbox"\n' "$D" "$D" "$D"
        printf '[recording]\ndir = "%s/cost/recordings"\n[detect]\nmodel = "%s/models/yolox_nano.toml"\n' "$D" "$ROOT"
        for i in $(seq "$NCAM"); do
            printf '[[cameras]]\nid = "cam%s"\nurl = "%s"\ndetect_fps = 2\nrecord = %s\n' "$i" "$URL" "$1"
        done
    } > "$D/cost.toml"
    # %O: file system outputs in 512-byte blocks (what reached the page cache for the disk).
    /usr/bin/time -f '%U %S %O' -o "$D/time" "$BIN/vigil-agent" run --config "$D/cost.toml" --seconds "$COSTSECS" \
        > /dev/null 2> "$D/cost.log" || { tail -20 "$D/cost.log" >&2; exit 1; }
    store=$( (du -sb "$D/cost/recordings" 2>/dev/null || echo 0) | cut -f1)
    awk -v s="${store:-0}" '{printf "%.3f %d %d\n", $1 + $2, $3 * 512, s}' "$D/time"
}
: > "$D/on"; : > "$D/off"; : > "$D/ratio"
for _ in $(seq "$RUNS"); do
    read -r c_off w_off s_off < <(run_agent false)
    read -r c_on w_on s_on < <(run_agent true)
    echo "$c_off $w_off $s_off" >> "$D/off"
    echo "$c_on $w_on $s_on" >> "$D/on"
    awk -v a="$c_on" -v b="$c_off" 'BEGIN {printf "%.4f\n", a / b}' >> "$D/ratio"
done
kill "$CAMSIM_PID" 2>/dev/null || true
col() { awk -v k="$1" '{print $k}' "$2" | stats; }
read -r on_med on_min on_max < <(col 1 "$D/on")
read -r off_med off_min off_max < <(col 1 "$D/off")
read -r r_med r_min r_max < <(stats < "$D/ratio")
read -r won _ _ < <(col 2 "$D/on")
read -r woff _ _ < <(col 2 "$D/off")
read -r son _ _ < <(col 3 "$D/on")
pct() { awk -v c="$1" -v s="$COSTSECS" -v n="$NCAM" 'BEGIN {printf "%.1f", c / s / n * 100}'; }
extra_pct=$(awk -v a="$on_med" -v b="$off_med" -v s="$COSTSECS" -v n="$NCAM" 'BEGIN {printf "%.2f", (a - b) / s / n * 100}')
mbs() { awk -v b="$1" -v s="$COSTSECS" -v n="$NCAM" 'BEGIN {printf "%.3f", b / s / n / 1e6}'; }

# 2. Manifests at the hub, and a pulled window.
mkdir -p "$D/hub"
printf 'bench-password-1\n' | "$BIN/vigil-hub" user add inv --role investigator --data-dir "$D/hub/hub" > /dev/null
embedded_hub "$D/hub" bench "$D/agent.pem"
camsim target/samples/vtest_1080p15.mp4 pull; URL1080=$CAMSIM_URL
cat > "$D/pull.toml" <<TOML
agent_id = "bench"
key = "$D/agent.key"
chain_dir = "$D/pull/chain"
outbox_dir = "$D/pull/outbox"
[recording]
dir = "$D/pull/recordings"
piece_seconds = $PIECE
[detect]
model = "$ROOT/models/yolox_nano.toml"
[uplink]
broker = "mqtt://127.0.0.1:$MQTT_PORT"
username = "bench"
password = "$MQTT_PASSWORD"
[[cameras]]
id = "cam1"
url = "$URL1080"
detect_fps = 1
TOML
"$BIN/vigil-agent" run --config "$D/pull.toml" > /dev/null 2> "$D/pull-agent.log" &
AGENT_PID=$!
pids+=($AGENT_PID)
DB="$D/hub/hub/index.sqlite"
q() { python3 -c 'import sqlite3, sys; print(*sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone())' "$DB" "$1"; }
# The window: from the first piece's start, WINDOW_S long; recorded once the hub knows a
# piece that starts at or after its end (every piece of it sealed and announced).
pieces_known() { [ "$(q "SELECT count(*) FROM chain_links WHERE kind = 'piece'" 2>/dev/null || echo 0)" -ge 1 ]; }
wait_for $((PIECE * 2 + 60)) pieces_known || { tail -20 "$D/pull-agent.log" >&2; exit 1; }
FROM_MS=$(q "SELECT min(start_ms) FROM chain_links WHERE kind = 'piece'")
TO_MS=$((FROM_MS + WINDOW_S * 1000))
covered() { [ "$(q "SELECT count(*) FROM chain_links WHERE kind = 'piece' AND start_ms >= $TO_MS")" -ge 1 ]; }
wait_for $((WINDOW_S + PIECE * 3 + 60)) covered || { tail -20 "$D/pull-agent.log" >&2; exit 1; }
read -r npieces rec_bytes video_bytes < <(q "SELECT count(*), sum(length(r.record) + length(r.signature)), sum(l.size)
    FROM chain_links l JOIN chain_records r ON r.sha256 = l.manifest_sha256
    WHERE l.kind = 'piece' AND l.start_ms < $TO_MS AND l.end_ms > $FROM_MS")
per_piece=$(awk -v b="$rec_bytes" -v n="$npieces" 'BEGIN {printf "%.0f", b / n}')
per_day_mb=$(awk -v b="$per_piece" -v p="$PIECE" 'BEGIN {printf "%.1f", b * 86400 / p / 1e6}')
share=$(awk -v b="$rec_bytes" -v v="$video_bytes" 'BEGIN {printf "%.3f", b / v * 100}')

python3 bench/pull_window.py 127.0.0.1 "$WEB_PORT" inv bench-password-1 bench cam1 "$FROM_MS" "$TO_MS" \
    $((WINDOW_S + 300)) > "$D/pull.json" 2> "$D/pull.err" || { cat "$D/pull.err" >&2; tail -20 "$D/hub/hub.log" >&2; exit 1; }
read -r req_s play_s all_s pulled pulled_bytes < <(python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print("%.2f %.2f %.2f %d %d" % (d["request_s"], d["playable_s"], d["all_s"], d["pieces"], d["bytes"]))' "$D/pull.json")
kill "$AGENT_PID" 2>/dev/null || true

# Baseline: the same piece files fetched over loopback from Python's HTTP server.
# The pulled pieces only, from the agent's store (recordings/<camera>/pieces/<id>/clip.mp4).
mkdir -p "$D/plain"
for id in $(python3 -c 'import json,sys; print(*json.load(open(sys.argv[1]))["clip_ids"])' "$D/pull.json"); do
    cp "$(find "$D/pull/recordings" -path "*/$id/clip.mp4" | head -1)" "$D/plain/$id.mp4"
done
HTTP_PORT=$(free_port)
(cd "$D/plain" && exec python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1) > /dev/null 2>&1 &
pids+=($!)
wait_for 10 curl -sf "http://127.0.0.1:$HTTP_PORT/"
s=$(date +%s.%N)
for f in "$D"/plain/*.mp4; do curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/$(basename "$f")"; done
e=$(date +%s.%N)
plain_s=$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.2f", e - s}')
plain_bytes=$(cat "$D"/plain/*.mp4 | wc -c)
pull_ratio=$(awk -v a="$all_s" -v b="$plain_s" -v pa="$pulled_bytes" -v pb="$plain_bytes" 'BEGIN {printf "%.1f", (a / pa) / (b / pb)}')
mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.1f", b / 1e6 / t}'; }

cat <<MD
## Continuous recording: cost on the box, manifests at the hub, pulling a window

### Recording on vs off (same run)

\`vigil-agent run\` with $NCAM cameras of one camsim (768x576@10, GOP 2 s), detection at 2 fps each (the
box configuration of "Cameras per box"), ${COSTSECS} s, under \`/usr/bin/time\`; \`record = true\` (pieces of
60 s, journal \`fdatasync\` every second) vs \`record = false\`, alternating, $RUNS runs (median, min–max).
"Written" is the process's file-system output (\`%O\` × 512 B: journal, pieces, ledger, chain state).
Target: ≤ 5 % more CPU.

| what | CPU s (median, min–max) | CPU per camera, % of a core | written, MB/s per camera | recording store at the end | ratio to off |
| --- | --- | --- | --- | --- | --- |
| record = false (baseline) | $off_med ($off_min–$off_max) | $(pct "$off_med") | $(mbs "$woff") | – | 1.00 |
| **record = true** | $on_med ($on_min–$on_max) | $(pct "$on_med") | $(mbs "$won") | $(awk -v b="$son" 'BEGIN {printf "%.1f", b / 1e6}') MB | **$(awk -v r="$r_med" 'BEGIN {printf "%.3f", r}')** ($(awk -v r="$r_min" 'BEGIN {printf "%.3f", r}')–$(awk -v r="$r_max" 'BEGIN {printf "%.3f", r}')) |

Recording costs **$extra_pct % of a core per camera** here. Each access unit the ring already holds
(reference-counted, no copy of the video) is appended to the camera's journal with one \`write\`; a sync
thread \`fdatasync\`s every second; at each piece's end the journal is read back once, muxed into MP4
(no decode, no re-encode), hashed and signed. The bytes are written twice (journal, then the piece)
and the journal is removed once the piece is sealed: the written figure includes both.

### Piece manifests at the hub

One 1080p15 camera (camsim, GOP 2 s), pieces of ${PIECE} s, agent connected to \`vigil-hub run\` (embedded
broker); every piece's signed manifest reaches the hub as a record while the video stays on the box.
Measured over the $npieces pieces of the ${WINDOW_S} s window: the bytes the hub stores per piece (signed
canonical manifest + signature, \`chain_records\`; the \`chain_links\` index row adds ~250 B), against the
video they describe (baseline).

| what | per piece | per camera-day ($((86400 / PIECE)) pieces) | share of the video |
| --- | --- | --- | --- |
| video on the box (baseline) | $(awk -v v="$video_bytes" -v n="$npieces" 'BEGIN {printf "%.0f", v / n}') B | $(awk -v v="$video_bytes" -v n="$npieces" -v p="$PIECE" 'BEGIN {printf "%.0f", v / n * 86400 / p / 1e6}') MB | 100 % |
| **signed piece manifests at the hub** | $per_piece B | **$per_day_mb MB** | $share % |

### Pulling a ${WINDOW_S} s window of 1080p15

An investigator's pull through the web API (\`POST /api/recordings/requests\`, then polling
\`GET /api/recordings/requests\` every 100 ms), \`bench/pull_window.py\`: the hub sends the pull on the
agent's \`commands\` topic, the agent links the $pulled covering pieces into its outbox, they travel as
clips (chunked, acked, resumable) through the embedded broker, the hub verifies each (file hash, every
GOP, signature, chain link) and stores it; then every piece is fetched from \`/media/clips/{id}\` as the
player does. Baseline: the same files fetched with curl from Python's \`http.server\` over loopback
(no signing, no verification, no broker).

| what | seconds | MB | MB/s | ratio (s per MB) to the baseline |
| --- | --- | --- | --- | --- |
| plain HTTP copy of the piece files over loopback (baseline) | $plain_s | $(awk -v b="$plain_bytes" 'BEGIN {printf "%.1f", b / 1e6}') | $(mbps "$plain_bytes" "$plain_s") | 1.0 |
| pull → request \`complete\` at the hub | $req_s | | | |
| pull → the window's first piece fetched by the client (as soon as the hub stores it) | **$play_s** | | | |
| pull → every piece fetched by the client | $all_s | $(awk -v b="$pulled_bytes" 'BEGIN {printf "%.1f", b / 1e6}') | $(mbps "$pulled_bytes" "$all_s") | $pull_ratio |

MD
