#!/usr/bin/env bash
# Vigil benchmarks. Every figure is a ratio against a baseline measured in the same run
# (the machine is shared and noisy); absolute numbers are reported, never asserted.
# QUICK=1: short runs, the independent scripts side by side (about a minute), so the
# harness cannot rot; its figures mean nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/target/release}"
OUT="${BENCH_OUT:-$ROOT/BENCHMARKS.md}"
QUICK="${QUICK:-}"
if [ -n "$QUICK" ]; then SECS=3; RUNS=1; else SECS=30; RUNS=3; fi
WORK="$(mktemp -d)"
D="$WORK"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# cpu_seconds CMD... : user+sys CPU seconds of a command (GNU time).
cpu_seconds() {
    /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || { cat "$WORK/stderr" >&2; return 1; }
    awk '{printf "%.3f\n", $1 + $2}' "$WORK/time"
}

# Quick mode only checks that every script still runs: the independent ones start at once,
# side by side (their figures then mean nothing, and the Markdown says it is a quick run).
if [ -n "$QUICK" ]; then
    for s in delivery latency memory trust recording; do
        WORK="$WORK" RUNS="$RUNS" QUICK="$QUICK" BIN="$BIN" bash "bench/$s.sh" > "$WORK/$s.md" 2> "$WORK/$s.err" &
        pids+=($!)
        eval "${s}_pid=$!"
    done
fi

camsim target/samples/vtest_1080p15.mp4 a
URL1080=$CAMSIM_URL

# 1. Ingest CPU for one 1080p15 camera: analysis at 5 fps, recording only, vs ffmpeg decode.
: > "$WORK/ing_an"; : > "$WORK/ing_rec"; : > "$WORK/ffm"; : > "$WORK/ffm_auto"
for _ in $(seq $RUNS); do
    cpu_seconds "$BIN/vigil-agent" ingest --url "$URL1080" --seconds "$SECS" --detect-fps 5 >> "$WORK/ing_an"
    cpu_seconds "$BIN/vigil-agent" ingest --url "$URL1080" --seconds "$SECS" --detect-fps 0 >> "$WORK/ing_rec"
    cpu_seconds ffmpeg -nostdin -v error -threads 1 -rtsp_transport tcp -i "$URL1080" -t "$SECS" -f null - >> "$WORK/ffm"
    cpu_seconds ffmpeg -nostdin -v error -rtsp_transport tcp -i "$URL1080" -t "$SECS" -f null - >> "$WORK/ffm_auto"
done
read -r an_med an_min an_max < <(stats < "$WORK/ing_an")
read -r rec_med rec_min rec_max < <(stats < "$WORK/ing_rec")
read -r ff_med ff_min ff_max < <(stats < "$WORK/ffm")
read -r ffd_med ffd_min ffd_max < <(stats < "$WORK/ffm_auto")
per_min() { awk -v c="$1" -v s="$SECS" 'BEGIN {printf "%.2f", c * 60 / s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# 2. Hashing + signature verification of a clip vs sha256sum of the same file.
KEY="$WORK/agent.key"
"$BIN/vigil-agent" keygen --key "$KEY" > /dev/null
"$BIN/vigil-agent" record --url "$URL1080" --seconds "$SECS" --out "$WORK/clip" --key "$KEY" --state-dir "$WORK/chain" 2>/dev/null >/dev/null
CLIP_BYTES=$(stat -c %s "$WORK/clip/clip.mp4")
: > "$WORK/ver"; : > "$WORK/sha"
for _ in $(seq $((RUNS * 3))); do
    s=$(date +%s.%N); "$BIN/vigil-verify" "$WORK/clip" --trust "$WORK/clip/pubkey.pem" > /dev/null; e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f\n", e - s}' >> "$WORK/ver"
    s=$(date +%s.%N); sha256sum "$WORK/clip/clip.mp4" > /dev/null; e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f\n", e - s}' >> "$WORK/sha"
done
read -r v_med v_min v_max < <(stats < "$WORK/ver")
read -r h_med h_min h_max < <(stats < "$WORK/sha")
mbps() { awk -v b="$CLIP_BYTES" -v t="$1" 'BEGIN {printf "%.0f", b / 1e6 / t}'; }

# 3. Detection: Vigil's detect path vs the bare model, and vs a plain Python pipeline.
DFRAMES=$([ -n "$QUICK" ] && echo 30 || echo 300)
: > "$WORK/vd"; : > "$WORK/vtot"; : > "$WORK/py"
for _ in $(seq $RUNS); do
    /usr/bin/time -f '%U %S' -o "$WORK/time" "$BIN/vigil-agent" detect --model models/yolox_nano.toml \
        --input target/samples/vtest.mp4 --fps 0 --frames "$DFRAMES" --stats > /dev/null 2> "$WORK/dstderr"
    sed -n 's/.*cpu_ms_per_frame=\([0-9.]*\).*/\1/p' "$WORK/dstderr" >> "$WORK/vd"
    awk -v n="$DFRAMES" '{printf "%.3f\n", ($1 + $2) * 1000 / n}' "$WORK/time" >> "$WORK/vtot"
    PYTHONPATH="$ROOT/.deps/python" python3 bench/python_baseline.py models/yolox_nano.onnx target/samples/vtest.mp4 "$DFRAMES" >> "$WORK/py"
done
read -r vd_med vd_min vd_max < <(stats < "$WORK/vd")
read -r vt_med vt_min vt_max < <(stats < "$WORK/vtot")
read -r bare_med bare_min bare_max < <(python3 -c 'import json,sys; [print(json.loads(l)["bare_cpu_ms"]) for l in open(sys.argv[1])]' "$WORK/py" | stats)
read -r py_med py_min py_max < <(python3 -c 'import json,sys; [print(json.loads(l)["pipeline_cpu_ms"]) for l in open(sys.argv[1])]' "$WORK/py" | stats)

# 4-5. Capacity: cost per camera vs the physical limit, cameras per box (bench/capacity.sh).
WORK="$WORK" RUNS="$RUNS" QUICK="$QUICK" BIN="$BIN" bash bench/capacity.sh > "$WORK/capacity.md"

# 6-7. Delivery: hub ingest throughput vs the raw broker, event latency (bench/delivery.sh).
# 8. Event latency as the camera room sees it: camsim send -> live feed (bench/latency.sh).
# 9. Memory: agent RSS over 10 minutes at 1/4/16 cameras, hub RSS ingesting 1k clips + 10k events.
# 10. Trust boundary: clips and events over TLS vs plain, hub RSS with 1000 idle sessions.
# 11. Recording: agent CPU and disk with recording on vs off, piece manifests per camera-day
#     at the hub, pulling a 10-minute 1080p window (bench/recording.sh).
for s in delivery latency memory trust recording; do
    if [ -n "$QUICK" ]; then
        pid_var="${s}_pid"
        wait "${!pid_var}" || { cat "$WORK/$s.err" >&2; echo "bench: $s.sh failed" >&2; exit 1; }
    else
        WORK="$WORK" RUNS="$RUNS" QUICK="$QUICK" BIN="$BIN" bash "bench/$s.sh" > "$WORK/$s.md"
    fi
done

cat > "$OUT" <<MD
# Benchmarks

Written by \`make bench${QUICK:+ QUICK=1}\` on $(date -u +%Y-%m-%dT%H:%MZ). Every figure is a ratio against a
baseline measured in the same run; absolute values are given for reference only.

Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),
$(gst-launch-1.0 --version | sed -n 2p), $(ffmpeg -version | head -1 | cut -d' ' -f1-3), $(rustc --version).
Runs per figure: $RUNS (median, min–max), ${SECS} s each.

## Ingest CPU, one 1080p15 H.264 camera (camsim, RTSP over TCP on loopback)

| what | CPU s per minute of video (median, min–max) | ratio to ffmpeg decode |
| --- | --- | --- |
| \`ffmpeg -threads 1 -rtsp_transport tcp -i URL -f null -\` (decode every frame, one thread like the agent: baseline) | $(per_min "$ff_med") ($(per_min "$ff_min")–$(per_min "$ff_max")) | 1.00 |
| \`ffmpeg -rtsp_transport tcp -i URL -f null -\` (ffmpeg's default frame threading) | $(per_min "$ffd_med") ($(per_min "$ffd_min")–$(per_min "$ffd_max")) | $(ratio "$ffd_med" "$ff_med") |
| vigil-agent ingest, recording branch + analysis at 5 fps (I420 frames copied out) | $(per_min "$an_med") ($(per_min "$an_min")–$(per_min "$an_max")) | $(ratio "$an_med" "$ff_med") |
| vigil-agent ingest, recording branch only (no decoding) | $(per_min "$rec_med") ($(per_min "$rec_min")–$(per_min "$rec_max")) | $(ratio "$rec_med" "$ff_med") |

Commands: \`vigil-agent ingest --url URL --seconds $SECS --detect-fps 5|0\` under \`/usr/bin/time\`.

Where the time goes: the analysis branch decodes **every** frame (H.264 frames depend on
each other, so frames cannot be skipped before the decoder), then \`videorate\` keeps 5 fps
and only those are copied out of the appsink, still as the decoder's I420 (the detector converts
only its 416x416 input to RGB). So the analysis branch costs about one full decode;
the recording branch (depayload, parse, ring) is small next to it. The agent's decoder runs
one thread per camera (\`decode_threads = 1\`, the default): frame threading costs more CPU
per frame and a frame of latency, and a box's parallelism is its cameras.

## Clip verification (hash + GOP hashes + signature) vs sha256sum

A ${SECS} s 1080p15 clip recorded and signed by \`vigil-agent record --key\`, $CLIP_BYTES bytes.

| what | wall s (median, min–max) | MB/s | ratio to sha256sum |
| --- | --- | --- | --- |
| \`sha256sum clip.mp4\` (baseline) | $h_med ($h_min–$h_max) | $(mbps "$h_med") | 1.00 |
| \`vigil-verify DIR --trust KEY\` (file SHA-256 + every GOP's SHA-256 + ECDSA verify) | $v_med ($v_min–$v_max) | $(mbps "$v_med") | $(ratio "$v_med" "$h_med") |

## Detection, YOLOX-Nano 416x416, one inference thread, vtest.mp4 (768x576)

| what | CPU ms per analysed frame (median, min–max) | ratio |
| --- | --- | --- |
| bare model: \`onnxruntime\` session.run in a loop on one prepared tensor (baseline: the physical limit) | $bare_med ($bare_min–$bare_max) | 1.00 |
| Vigil detect path, decode excluded (letterbox into the tensor, run, YOLOX decode, NMS; thread CPU time) | $vd_med ($vd_min–$vd_max) | $(ratio "$vd_med" "$bare_med") |
| plain Python pipeline: OpenCV decode + letterbox + onnxruntime + numpy decode + NMS (baseline 2) | $py_med ($py_min–$py_max) | 1.00 |
| Vigil whole process, GStreamer decode of every frame included (\`vigil-agent detect --fps 0\`) | $vt_med ($vt_min–$vt_max) | $(ratio "$vt_med" "$py_med") |

Commands: \`vigil-agent detect --input target/samples/vtest.mp4 --fps 0 --frames $DFRAMES --stats\` under
\`/usr/bin/time\`; \`python3 bench/python_baseline.py models/yolox_nano.onnx target/samples/vtest.mp4 $DFRAMES\`.

Signing uses the same single pass (\`ClipDescription::from_mp4\` over the clip in memory,
file hash on a second thread while GOPs are walked) plus one ECDSA signature.

$(cat "$WORK/capacity.md")

$(cat "$WORK/delivery.md")

$(cat "$WORK/latency.md")

$(cat "$WORK/memory.md")

$(cat "$WORK/trust.md")

$(cat "$WORK/recording.md")
MD
echo "bench: wrote $OUT" >&2
