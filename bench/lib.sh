# Helpers shared by the benchmark scripts (sourced, not run). The caller sets BIN (the
# binaries) and D (a scratch directory) before calling camsim.

# Processes to stop on exit; `camsim` and the callers append to it.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# free_port: a loopback TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for SECONDS CMD...: until CMD succeeds, or fail naming it.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "bench: timed out waiting for: $*" >&2; return 1; }
        sleep 0.05
    done
}

# rss_kib PID: the process's resident set in KiB (0 once it is gone).
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# mib KIB: whole MiB.
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

# stats: "median min max" of the numbers on stdin.
stats() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}'; }

# camsim FILE TAG: a sample camera on a free port; sets CAMSIM_URL and CAMSIM_PID. Not run
# in a subshell, so its pid reaches `pids` and cleanup stops it (a camera left running
# would load every later figure).
camsim() {
    "$BIN/vigil-agent" camsim --file "$1" --port 0 --path /cam > "$D/camsim.$2" 2>/dev/null &
    CAMSIM_PID=$!
    pids+=($CAMSIM_PID)
    wait_for 10 grep -q serving "$D/camsim.$2"
    CAMSIM_URL=$(awk '/serving/ {print $3}' "$D/camsim.$2")
}

# embedded_hub DIR AGENT_ID PEM [HUB_ARGS...]: `vigil-hub run` on DIR/hub with its embedded
# broker on a free port and the web on a free port, AGENT_ID enrolled with PEM. Sets
# HUB_PID, MQTT_PORT, MQTT_PASSWORD and WEB_PORT; the hub logs to DIR/hub.log.
embedded_hub() {
    local dir=$1 agent=$2 pem=$3; shift 3
    MQTT_PORT="$(free_port)"
    printf 'data_dir = "%s/hub"\n[broker]\nmode = "embedded"\n[broker.embedded]\nlisten = "127.0.0.1:%s"\n[web]\nlisten = "127.0.0.1:0"\n' \
        "$dir" "$MQTT_PORT" > "$dir/hub.toml"
    "$BIN/vigil-hub" agent add "$agent" --public-key "$pem" --config "$dir/hub.toml" > "$dir/enrol.txt"
    MQTT_PASSWORD="$(awk -F'"' '/^password = / {print $2}' "$dir/enrol.txt")"
    "$BIN/vigil-hub" "$@" run --config "$dir/hub.toml" > "$dir/hub.log" 2>&1 &
    HUB_PID=$!
    pids+=($HUB_PID)
    wait_for 20 grep -q "web listening on" "$dir/hub.log"
    WEB_PORT=$(sed -n 's/.*web listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/hub.log" | head -1)
}

# mosquitto_broker DIR: Mosquitto on a free loopback port with its own config (queues
# unbounded for the hub's session, TCP_NODELAY: acks are small replies the agent waits
# for, docs/mqtt.md). Sets MQ_PORT, MQ_URL and MQ_PID; logs to DIR/mosquitto.log.
mosquitto_broker() {
    MQ_PORT="$(free_port)"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmessage_size_limit 0\npersistence false\nset_tcp_nodelay true\n' \
        "$MQ_PORT" > "$1/mosquitto.conf"
    mosquitto -c "$1/mosquitto.conf" > "$1/mosquitto.log" 2>&1 &
    MQ_PID=$!
    pids+=($MQ_PID)
    wait_for 10 bash -c "echo > /dev/tcp/127.0.0.1/$MQ_PORT"
    MQ_URL="mqtt://127.0.0.1:$MQ_PORT"
}

# broker_hub DATA_DIR LOG AGENT_ID PEM BROKER_URL: `vigil-hub run` on an external broker
# (JSON logs, ingest at debug: delivery.sh reads its timings) with AGENT_ID enrolled;
# waits for the broker connection. Sets HUB_PID.
broker_hub() {
    "$BIN/vigil-hub" agent add "$3" --public-key "$4" --data-dir "$1" > /dev/null 2>&1
    RUST_LOG=info,vigil_hub::ingest=debug "$BIN/vigil-hub" --log-format json run --broker "$5" \
        --data-dir "$1" --web-listen 127.0.0.1:0 > "$2" 2>&1 &
    HUB_PID=$!
    pids+=($HUB_PID)
    wait_for 20 grep -q "Connected to the broker" "$2"
}

# signed_outbox URL N SECONDS: a new key D/agent.key (+ agent.pem) and N clips of SECONDS
# recorded from URL, signed into one chain (D/chain) by agent "bench", camera "cam1", in
# outbox layout under D/outbox0/clips/<clip_id>/. Sets KEY and CLIP_BYTES.
signed_outbox() {
    KEY="$D/agent.key"
    "$BIN/vigil-agent" keygen --key "$KEY" | sed -n '/BEGIN/,$p' > "$D/agent.pem"
    mkdir -p "$D/outbox0/clips"
    local i id
    for i in $(seq "$2"); do
        "$BIN/vigil-agent" record --url "$1" --seconds "$3" --out "$D/rec$i" --key "$KEY" \
            --state-dir "$D/chain" --agent-id bench --camera-id cam1 > /dev/null 2>&1
        id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["clip_id"])' "$D/rec$i/manifest.json")
        mv "$D/rec$i" "$D/outbox0/clips/$id"
    done
    CLIP_BYTES=$(cat "$D"/outbox0/clips/*/clip.mp4 | wc -c)
}
