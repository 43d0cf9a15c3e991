#!/usr/bin/env bash
# Trust-boundary benchmarks (issue 21), called by bench/run.sh; prints a Markdown section.
# Everything runs against `vigil-hub run` with its embedded broker listening on plain MQTT
# and on TLS at once, so both sides of every ratio share the hub, the machine and the minute.
#  1. Clip throughput: N signed 1080p15 clips delivered by `vigil-agent deliver` over plain
#     MQTT vs over TLS (a fresh hub per delivery), alternating, RUNS times.
#  2. Event round trip: `event-rtt` publishes event messages one at a time as an agent and
#     times each to the hub's `stored` entry ack (front, rumqttd, ingest, SQLite, ack back),
#     plain vs TLS, alternating.
#  3. Hub memory with NIDLE idle agent sessions (`mqtt-idle`, enrolled agents, keep-alive
#     only) over TLS vs plain, each on a fresh hub with the same index, vs the idle hub.
# Env: BIN (release binaries), QUICK, RUNS, WORK (scratch dir, removed by the caller).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/target/release}"
WORK="${WORK:?}"
QUICK="${QUICK:-}"
RUNS="${RUNS:-3}"
if [ -n "$QUICK" ]; then NCLIPS=2; CLIPSECS=2; NEV=20; NIDLE=20; else NCLIPS=10; CLIPSECS=4; NEV=200; NIDLE=1000; fi
D="$WORK/trust"
mkdir -p "$D"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

camsim target/samples/vtest_1080p15.mp4 trust; URL1080=$CAMSIM_URL
signed_outbox "$URL1080" "$NCLIPS" "$CLIPSECS"
kill "$CAMSIM_PID" 2>/dev/null || true

# tls_hub DIR: `vigil-hub run` on DIR with plain and TLS listeners on free ports.
# Sets HUB_PID, PLAIN_PORT, TLS_PORT; the CA is DIR/data/broker-tls/ca.pem.
tls_hub_config() {
    PLAIN_PORT="$(free_port)"; TLS_PORT="$(free_port)"
    printf 'data_dir = "%s/data"\n[broker.embedded]\nlisten = "127.0.0.1:%s"\ntls_listen = "127.0.0.1:%s"\nmax_pending_per_address = 4096\n[web]\nlisten = "127.0.0.1:0"\n' \
        "$1" "$PLAIN_PORT" "$TLS_PORT" > "$1/hub.toml"
}
tls_hub_start() {
    "$BIN/vigil-hub" run --config "$1/hub.toml" > "$1/hub.log" 2>&1 &
    HUB_PID=$!
    pids+=($HUB_PID)
    wait_for 30 grep -q "broker listening with TLS on" "$1/hub.log"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
enrol() { # enrol DIR ID -> password
    "$BIN/vigil-hub" agent add "$2" --public-key "$D/agent.pem" --config "$1/hub.toml" \
        | awk -F'"' '/^password = / {print $2}'
}

# 1. Clip throughput, plain vs TLS.
: > "$D/clips.plain"; : > "$D/clips.tls"
for r in $(seq "$RUNS"); do
    for mode in plain tls; do
        h="$D/deliver-$mode-$r"; mkdir -p "$h"
        tls_hub_config "$h"
        pass=$(enrol "$h" bench)
        tls_hub_start "$h"
        if [ "$mode" = tls ]; then
            broker="mqtts://127.0.0.1:$TLS_PORT"; ca="ca_file = \"$h/data/broker-tls/ca.pem\""
        else
            broker="mqtt://127.0.0.1:$PLAIN_PORT"; ca=""
        fi
        rm -rf "$h/outbox"; cp -r "$D/outbox0" "$h/outbox"
        cat > "$h/agent.toml" <<TOML
agent_id = "bench"
key = "$KEY"
chain_dir = "$D/chain"
outbox_dir = "$h/outbox"
[detect]
model = "$ROOT/models/yolox_nano.toml"
[uplink]
broker = "$broker"
$ca
username = "bench"
password = "$pass"
[[cameras]]
id = "cam1"
url = "rtsp://127.0.0.1:9/unused"
TOML
        "$BIN/vigil-agent" deliver --config "$h/agent.toml" --timeout-seconds 300 > "$h/deliver.json" 2> "$h/deliver.log" \
            || { cat "$h/deliver.log" >&2; exit 1; }
        python3 - "$h/deliver.json" "$NCLIPS" >> "$D/clips.$mode" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["clips_stored"] == int(sys.argv[2]) and s["entries_left"] == 0, s
print(s["connected_ms"] / 1000)
PY
        stop "$HUB_PID"
    done
done
read -r cp_med cp_min cp_max < <(stats < "$D/clips.plain")
read -r ct_med ct_min ct_max < <(stats < "$D/clips.tls")
mbs() { awk -v b="$CLIP_BYTES" -v s="$1" 'BEGIN {printf "%.1f", b / s / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# 2. Event round trip, plain vs TLS, on one hub.
h="$D/rtt"; mkdir -p "$h"
tls_hub_config "$h"
pass=$(enrol "$h" bench)
tls_hub_start "$h"
: > "$D/rtt.plain"; : > "$D/rtt.tls"
for _ in $(seq "$RUNS"); do
    "$BIN/event-rtt" 127.0.0.1 "$PLAIN_PORT" bench "$pass" "$NEV" >> "$D/rtt.plain"
    "$BIN/event-rtt" 127.0.0.1 "$TLS_PORT" bench "$pass" "$NEV" --ca "$h/data/broker-tls/ca.pem" >> "$D/rtt.tls"
done
stop "$HUB_PID"
col() { python3 -c 'import json,sys; [print(json.loads(l)[sys.argv[1]]) for l in sys.stdin]' "$1"; }
read -r rp50 _ _ < <(col p50_ms < "$D/rtt.plain" | stats)
read -r rp95 _ _ < <(col p95_ms < "$D/rtt.plain" | stats)
read -r tp50 _ _ < <(col p50_ms < "$D/rtt.tls" | stats)
read -r tp95 _ _ < <(col p95_ms < "$D/rtt.tls" | stats)

# 3. Hub memory with NIDLE idle sessions: enrol once, then a fresh hub per transport.
base="$D/idle0"; mkdir -p "$base"
tls_hub_config "$base"
: > "$D/logins"
for i in $(seq "$NIDLE"); do
    echo "idle$i $(enrol "$base" "idle$i")" >> "$D/logins"
done
idle_rss() { # idle_rss MODE -> "idle_kib sessions_kib"
    local h="$D/idle-$1"
    rm -rf "$h"; cp -r "$base" "$h"
    sed -i "s|$base|$h|" "$h/hub.toml"
    tls_hub_start "$h"
    sleep 3
    local before; before=$(rss_kib "$HUB_PID")
    local args=(127.0.0.1 "$PLAIN_PORT" "$D/logins")
    if [ "$1" = tls ]; then args=(127.0.0.1 "$TLS_PORT" "$D/logins" --ca "$h/data/broker-tls/ca.pem"); fi
    mkfifo "$h/hold"
    "$BIN/mqtt-idle" "${args[@]}" < "$h/hold" > "$h/idle.out" 2> "$h/idle.err" &
    local idle_pid=$!
    exec 9> "$h/hold"
    wait_for 400 grep -q "^connected" "$h/idle.out" || { cat "$h/idle.err" "$h/hub.log" >&2; exit 1; }
    sleep 5
    local with; with=$(rss_kib "$HUB_PID")
    exec 9>&-
    stop "$idle_pid"
    stop "$HUB_PID"
    echo "$before $with"
}
read -r ip0 ip1 < <(idle_rss plain)
read -r it0 it1 < <(idle_rss tls)
per_conn() { awk -v a="$1" -v b="$2" -v n="$NIDLE" 'BEGIN {printf "%.1f", (b - a) / n}'; }

cat <<MD
## Trust boundary: TLS and the broker front (embedded broker)

Every agent connection goes through the hub's front (TLS, login, per-agent ACL, packet
checks) to rumqttd on loopback; both listeners of one hub, same run. $NCLIPS signed
1080p15 clips ($CLIP_BYTES bytes) per delivery, a fresh hub each; $NEV event messages
per round-trip run; $RUNS runs each, alternating plain and TLS.

| what | plain MQTT (median, min–max) | TLS (median, min–max) | ratio TLS / plain |
| --- | --- | --- | --- |
| clip delivery, \`vigil-agent deliver\` connected → outbox empty, s | $cp_med ($cp_min–$cp_max), $(mbs "$cp_med") MB/s | $ct_med ($ct_min–$ct_max), $(mbs "$ct_med") MB/s | $(ratio "$ct_med" "$cp_med") |
| event publish → hub's \`stored\` entry ack, p50 ms | $rp50 | $tp50 | $(ratio "$tp50" "$rp50") |
| event publish → hub's \`stored\` entry ack, p95 ms | $rp95 | $tp95 | $(ratio "$tp95" "$rp95") |

Hub resident memory with $NIDLE enrolled agents logged in and idle (keep-alive only),
each transport on a fresh hub with the same index:

| what | plain MQTT | TLS |
| --- | --- | --- |
| hub RSS before the sessions, MiB | $(mib "$ip0") | $(mib "$it0") |
| hub RSS with $NIDLE idle sessions, MiB | $(mib "$ip1") | $(mib "$it1") |
| per session, KiB | $(per_conn "$ip0" "$ip1") | $(per_conn "$it0" "$it1") |

Messages are not signed one by one (the ACL at the front is what stops one agent from
speaking for another on the embedded broker), so there is no per-message signing cost
to report.
MD
