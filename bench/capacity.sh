#!/usr/bin/env bash
# Capacity benchmarks (issue 9), called by bench/run.sh; prints a Markdown section.
#  1. Cost per camera vs the physical limit: `vigil-agent run` with one camera (detection at
#     5 fps, motion gate on, clips sealed into the outbox) vs ffmpeg decoding the same
#     stream + the bare model at the same rate, both timed next to each agent run.
#  2. Cameras per box: N sessions of the 768x576@10 camsim, detection at 2 fps each; over
#     the window, every camera must deliver every access unit (10 fps), the p95 result age
#     (decoded frame → detections) must stay below 500 ms, and the agent below 90 % of the
#     machine's CPU. N grows until a condition fails. Agent RSS is sampled (memory).
# Env: BIN, QUICK, RUNS, WORK; BOX_NS overrides the camera counts tried (empty: no search);
# COST_CAMS overrides the cameras of part 1 (empty: part 1 skipped, e.g. to rerun part 2 alone).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/target/release}"
WORK="${WORK:?}"
QUICK="${QUICK:-}"
RUNS="${RUNS:-3}"
export ORT_DYLIB_PATH="$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1"
if [ -n "$QUICK" ]; then COSTSECS=5; WINDOW=4; NS="2"; WARM=2; else WARM=5; COSTSECS=20; WINDOW=120; NS="16 24 32"; fi
NS="${BOX_NS-$NS}"
D="$WORK/capacity"
mkdir -p "$D"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TICK=$(getconf CLK_TCK)
NPROC=$(nproc)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { mib "$(rss_kib "$1")"; }

# agent_config FILE N URL FPS [METRICS_PORT]
agent_config() {
    {
        echo "agent_id = \"bench\""
        echo "key = \"$D/agent.key\""
        echo "chain_dir = \"$D/chain-$2\""
        echo "outbox_dir = \"$D/outbox-$2\""
        echo "[detect]"
        echo "model = \"$ROOT/models/yolox_nano.toml\""
        if [ -n "${5:-}" ]; then printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$5"; fi
        for i in $(seq "$2"); do
            printf '[[cameras]]\nid = "cam%s"\nurl = "%s"\ndetect_fps = %s\n' "$i" "$3" "$4"
        done
    } > "$1"
}
[ -f "$D/agent.key" ] || "$BIN/vigil-agent" keygen --key "$D/agent.key" > /dev/null

# 1. Cost per camera.
# The bare model is timed in this loop, right before and right after each agent pair, and
# every run's ratio uses its own baseline: the machine is shared, and the same model took
# 13.5 to 19.2 ms per inference in runs minutes apart, which moved the ratio by 0.2.
# "At the same rate": the limit paces the model at the agent's 5 inferences per second
# (RATE_N of them, ~10 % dearer each than back to back, cold caches); the back-to-back
# figure is reported beside it.
RATE_N=$([ -n "$QUICK" ] && echo 5 || echo 25)
bare_ms() { # prints "PACED BACK_TO_BACK": CPU ms per inference of the bare model
    PYTHONPATH="$ROOT/.deps/python" python3 bench/python_baseline.py models/yolox_nano.onnx \
        target/samples/vtest.mp4 "$RATE_N" bare 5 |
        python3 -c 'import json,sys; d = json.load(sys.stdin); print("%.3f %.3f" % (d["paced_cpu_ms"], d["bare_cpu_ms"]))'
}
cost_rows=""
COST_CAMS="${COST_CAMS-vtest_1080p15.mp4:1080p15 vtest.mp4:768x576@10}"
for cam in $COST_CAMS; do
    set -- ${cam/:/ }
    camsim "target/samples/$1" "cost-$2"; url=$CAMSIM_URL
    : > "$D/agent_cpu"; : > "$D/ffmpeg_cpu"; : > "$D/ffmpeg1_cpu"; : > "$D/agent_steady"; : > "$D/bare"
    : > "$D/ratio"; : > "$D/ratio_whole"; : > "$D/ratio_d"; : > "$D/bare_b2b"; : > "$D/ratio_b2b"
    agent_cpu() { # agent_cpu SECONDS: CPU seconds of a fresh `vigil-agent run`
        rm -rf "$D/chain-1" "$D/outbox-1"
        agent_config "$D/cost.toml" 1 "$url" 5
        /usr/bin/time -f '%U %S' -o "$D/time" "$BIN/vigil-agent" run --config "$D/cost.toml" --seconds "$1" \
            > /dev/null 2> "$D/cost.log" || { cat "$D/cost.log" >&2; exit 1; }
        awk '{printf "%.3f\n", $1 + $2}' "$D/time"
    }
    for r in $(seq "$RUNS"); do
        read -r p0 q0 < <(bare_ms)
        whole=$(agent_cpu "$COSTSECS")
        echo "$whole" >> "$D/agent_cpu"
        # Steady state: minus a 2 s run's start-up (ONNX Runtime, model, first GOP).
        short=$(agent_cpu 2)
        steady=$(awk -v w="$whole" -v s="$short" -v t="$COSTSECS" 'BEGIN {printf "%.3f", (w - s) * t / (t - 2)}')
        echo "$steady" >> "$D/agent_steady"
        read -r p1 q1 < <(bare_ms)
        bare=$(awk -v a="$p0" -v b="$p1" 'BEGIN {printf "%.3f", (a + b) / 2}')
        echo "$bare" >> "$D/bare"
        b2b=$(awk -v a="$q0" -v b="$q1" 'BEGIN {printf "%.3f", (a + b) / 2}')
        echo "$b2b" >> "$D/bare_b2b"
        /usr/bin/time -f '%U %S' -o "$D/time" ffmpeg -nostdin -v error -rtsp_transport tcp -i "$url" -t "$COSTSECS" -f null - \
            > /dev/null 2>&1
        fd=$(awk '{printf "%.3f", $1 + $2}' "$D/time")
        echo "$fd" >> "$D/ffmpeg_cpu"
        # One decoder thread, like the agent's default (decode_threads = 1): the cheaper
        # decode, so the stricter limit.
        /usr/bin/time -f '%U %S' -o "$D/time" ffmpeg -nostdin -v error -threads 1 -rtsp_transport tcp -i "$url" \
            -t "$COSTSECS" -f null - > /dev/null 2>&1
        f1=$(awk '{printf "%.3f", $1 + $2}' "$D/time")
        echo "$f1" >> "$D/ffmpeg1_cpu"
        # This run's limit: its own one-thread decode + its own bare model at 5 fps.
        awk -v a="$steady" -v f="$f1" -v m="$bare" -v s="$COSTSECS" 'BEGIN {printf "%.3f\n", a / (f + m * 5 * s / 1000)}' >> "$D/ratio"
        awk -v a="$whole" -v f="$f1" -v m="$bare" -v s="$COSTSECS" 'BEGIN {printf "%.3f\n", a / (f + m * 5 * s / 1000)}' >> "$D/ratio_whole"
        awk -v a="$steady" -v f="$fd" -v m="$bare" -v s="$COSTSECS" 'BEGIN {printf "%.3f\n", a / (f + m * 5 * s / 1000)}' >> "$D/ratio_d"
        awk -v a="$steady" -v f="$f1" -v m="$b2b" -v s="$COSTSECS" 'BEGIN {printf "%.3f\n", a / (f + m * 5 * s / 1000)}' >> "$D/ratio_b2b"
    done
    kill "$CAMSIM_PID" 2>/dev/null || true
    read -r a_med a_min a_max < <(stats < "$D/agent_cpu")
    read -r s_med s_min s_max < <(stats < "$D/agent_steady")
    read -r fd_med _ _ < <(stats < "$D/ffmpeg_cpu")
    read -r f_med _ _ < <(stats < "$D/ffmpeg1_cpu")
    read -r b_med b_min b_max < <(stats < "$D/bare")
    read -r r_med r_min r_max < <(stats < "$D/ratio")
    read -r rw_med _ _ < <(stats < "$D/ratio_whole")
    read -r rd_med _ _ < <(stats < "$D/ratio_d")
    read -r q_med _ _ < <(stats < "$D/bare_b2b")
    read -r rb_med _ _ < <(stats < "$D/ratio_b2b")
    model=$(awk -v ms="$b_med" -v s="$COSTSECS" 'BEGIN {printf "%.3f", ms * 5 * s / 1000}')
    limit=$(awk -v f="$f_med" -v m="$model" 'BEGIN {printf "%.3f", f + m}')
    pm() { awk -v c="$1" -v s="$COSTSECS" 'BEGIN {printf "%.2f", c * 60 / s}'; }
    r2() { awk -v r="$1" 'BEGIN {printf "%.2f", r}'; }
    cost_rows+="| $2 | $(pm "$fd_med") | $(pm "$f_med") | $(r2 "$b_med") ($(r2 "$b_min")–$(r2 "$b_max")); back to back $(r2 "$q_med") | $(pm "$model") | $(pm "$limit") | $(pm "$a_med") ($(pm "$a_min")–$(pm "$a_max")) | $(r2 "$rw_med") | $(pm "$s_med") ($(pm "$s_min")–$(pm "$s_max")) | $(r2 "$r_med") ($(r2 "$r_min")–$(r2 "$r_max")) | $(r2 "$rd_med") | $(r2 "$rb_med") |
"
done

# 2. Cameras per box.
camsim target/samples/vtest.mp4 box; URL=$CAMSIM_URL
BOX_CAMSIM=$CAMSIM_PID
box_rows=""
best=0
for n in $NS; do
    rm -rf "$D/chain-$n" "$D/outbox-$n" "$D/recordings"
    port=$(free_port)
    agent_config "$D/box.toml" "$n" "$URL" 2 "$port"
    "$BIN/vigil-agent" run --config "$D/box.toml" > /dev/null 2> "$D/box-$n.log" &
    apid=$!
    pids+=($apid)
    scrape() { curl -sf "http://127.0.0.1:$port/metrics"; }
    streaming() { [ "$(scrape | grep -c 'state="streaming"} 1')" = "$n" ]; }
    wait_for 90 streaming || { tail -20 "$D/box-$n.log" >&2; exit 1; }
    sleep "$WARM" # every camera past its first GOP, the detector warm
    scrape > "$D/m0"; a0=$(ticks "$apid"); c0=$(ticks "$BOX_CAMSIM"); r0=$(rss_mib "$apid"); t0=$(date +%s.%N)
    sleep "$(awk -v w="$WINDOW" 'BEGIN {print w / 2}')"
    rmid=$(rss_mib "$apid")
    sleep "$(awk -v w="$WINDOW" 'BEGIN {print w / 2}')"
    scrape > "$D/m1"; a1=$(ticks "$apid"); c1=$(ticks "$BOX_CAMSIM"); r1=$(rss_mib "$apid"); t1=$(date +%s.%N)
    kill -TERM "$apid"; wait "$apid" 2>/dev/null || true
    read -r frames_min age_max age_n drops < <(python3 - "$D/m0" "$D/m1" "$t0" "$t1" <<'PY'
import re, sys
def parse(path):
    out = {}
    for l in open(path):
        m = re.match(r'^(\w+)\{camera="([^"]+)"\} (\S+)$', l.strip())
        if m:
            out[(m[1], m[2])] = float(m[3])
    return out
a, b = parse(sys.argv[1]), parse(sys.argv[2])
secs = float(sys.argv[4]) - float(sys.argv[3])
cams = sorted({c for (_, c) in b})
fr = [(b.get(("vigil_agent_camera_frames_total", c), 0) - a.get(("vigil_agent_camera_frames_total", c), 0)) / (10 * secs) for c in cams]
ages = [b[("vigil_agent_detect_result_age_p95_seconds", c)] * 1000 for c in cams if ("vigil_agent_detect_result_age_p95_seconds", c) in b]
drops = sum(b.get(("vigil_agent_detect_frames_dropped_total", c), 0) - a.get(("vigil_agent_detect_frames_dropped_total", c), 0) for c in cams)
print(f"{min(fr):.3f}", f"{max(ages):.0f}" if ages else "nan", len(ages), int(drops))
PY
)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    cpu=$(awk -v d=$((a1 - a0)) -v t="$TICK" -v s="$secs" -v p="$NPROC" 'BEGIN {printf "%.0f", d / t / s / p * 100}')
    ccpu=$(awk -v d=$((c1 - c0)) -v t="$TICK" -v s="$secs" -v p="$NPROC" 'BEGIN {printf "%.0f", d / t / s / p * 100}')
    ok=$(awk -v f="$frames_min" -v a="$age_max" -v c="$cpu" -v n="$age_n" -v k="$n" \
        'BEGIN {print (f >= 0.99 && n == k && a < 500 && c < 90) ? "yes" : "no"}')
    box_rows+="| $n | $frames_min | $age_max | $drops | $cpu % | $ccpu % | $r0 / $rmid / $r1 | $ok |
"
    if [ "$ok" = yes ]; then best=$n; else break; fi
done

cat <<MD
## Cost per camera vs the physical limit

\`vigil-agent run\` with one camera (detection at 5 fps, motion gate on, events and clips sealed into the
outbox), ${COSTSECS} s, under \`/usr/bin/time\`, vs the physical limit: ffmpeg decoding the same stream with
one thread (\`-threads 1 -f null\`, like the agent's default \`decode_threads = 1\`; ffmpeg's default frame
threading costs more CPU per frame, shown for reference) plus the bare model (\`onnxruntime\` session.run on a
prepared tensor, one thread) at the same rate, 5 inferences per second: paced like the agent runs it, so
each inference finds its weights out of the caches and costs ~10 % more CPU than in a back-to-back loop
(the back-to-back figure and the ratio to it are given too). The bare model is timed right before and
right after each run's agent pair ($RATE_N paced inferences each, averaged), and each run's ratio divides
by that run's own limit, so a busy minute on the shared machine moves both sides. Runs: $RUNS (median,
min–max). "Whole run" includes start-up (ONNX Runtime and model load, RTSP set-up: about 0.6 CPU s);
"steady state" subtracts a 2 s run's CPU, which is the cost of a camera on a box that runs for days.

| camera | ffmpeg decode, default threads, CPU s/min | ffmpeg decode, 1 thread, CPU s/min | bare model at 5/s, CPU ms per inference | bare model at 5 fps, CPU s/min | physical limit (1-thread decode + model), CPU s/min | vigil-agent run, whole run, CPU s/min | ratio | vigil-agent run, steady state, CPU s/min | ratio to the limit (per run) | ratio to default-thread ffmpeg + model | ratio to 1-thread ffmpeg + back-to-back model |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${cost_rows}
## Cameras per box (768x576@10, detection at 2 fps each)

N RTSP sessions of one camsim (its CPU reported separately), one \`vigil-agent run\` with N cameras, every
one recorded continuously (\`record = true\`, the default: 60 s pieces signed as they are sealed); after
every camera streams and 5 s of warm-up, a ${WINDOW} s window read from the agent's \`/metrics\` and
\`/proc\`. Pass: every camera received ≥ 99 % of the 10 fps it was sent (no access unit lost to the
recording branch), p95 result age < 500 ms on every camera (\`vigil_agent_detect_result_age_p95_seconds\`:
decoded frame → detections; the RTSP jitter buffer, 200 ms, and decode come before it), agent CPU < 90 %
of the ${NPROC} cores. N grows until a condition fails.

| N | min fps ratio | max p95 result age, ms | frames not analysed (replaced by a newer one) | agent CPU (machine) | camsim CPU | agent RSS MiB start / mid / end | pass |
| --- | --- | --- | --- | --- | --- | --- | --- |
${box_rows}
Largest N that passed: **$best**. RSS grows while the pre-event rings fill (each holds
pre_roll + max_clip + 10 s = 75 s of video by default), which takes most of the window;
what happens after they are full is the Memory section's 10-minute run.
MD
