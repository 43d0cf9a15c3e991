#!/usr/bin/env bash
# One-command setup for Vigil development, tests and the demo.
# Idempotent: every step checks first and is silent when there is nothing to do.
# Works as root, or as a normal user with sudo for the Debian packages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORT_VERSION="1.31.1"
ORT_DIR="$ROOT/.deps/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
SAMPLES="$ROOT/target/samples"
PY_DEPS="$ROOT/.deps/python"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and sudo is missing; run as root or install sudo"
    SUDO="sudo"
fi

# 1. Debian packages ----------------------------------------------------------
PACKAGES=(
    build-essential pkg-config cmake nasm curl unzip ca-certificates python3-pip
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
    libgstrtspserver-1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    gstreamer1.0-libav gstreamer1.0-rtsp
    mosquitto ffmpeg sqlite3 chromium chromium-driver openssl systemd
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The system mosquitto service is not ours: tests start their own brokers.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

# 2. ONNX Runtime shared library, from PyPI's wheel ------------------------------
if [ ! -f "$ORT_LIB" ]; then
    say "fetching ONNX Runtime $ORT_VERSION from PyPI"
    tmp="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
        "onnxruntime==$ORT_VERSION" -d "$tmp" || die "could not download onnxruntime==$ORT_VERSION from PyPI"
    whl="$(ls "$tmp"/onnxruntime-*.whl | head -n1)"
    mkdir -p "$ORT_DIR"
    unzip -q -j -o "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp/lib" \
        || die "the wheel $whl has no libonnxruntime.so.$ORT_VERSION"
    mv "$tmp/lib/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
    rm -rf "$tmp"
fi

# Python helpers for tests (tiny synthetic ONNX models), kept out of the system site.
# onnx builds tiny test models; onnxruntime + OpenCV make the plain-Python baseline of bench/.
if [ ! -d "$PY_DEPS/cv2" ] || [ ! -d "$PY_DEPS/onnx" ]; then
    say "installing Python test/bench helpers (onnx, numpy, onnxruntime, opencv) into .deps/python"
    python3 -m pip install --quiet --root-user-action=ignore --disable-pip-version-check --target "$PY_DEPS" \
        "onnx==1.19.1" "numpy==2.2.6" "onnxruntime==$ORT_VERSION" "opencv-python-headless==5.0.0.93" \
        || die "could not install the Python helpers from PyPI"
fi

# 3. Detection model -------------------------------------------------------------
model_sha() { sed -n 's/^sha256 = "\(.*\)"/\1/p' "$ROOT/models/$1.toml"; }
MODEL="$ROOT/models/yolox_nano.onnx"
WANT="$(model_sha yolox_nano)"
if [ ! -f "$MODEL" ] || [ "$(sha256sum "$MODEL" | cut -d' ' -f1)" != "$WANT" ]; then
    if [ -f "$ROOT/../shared/models/yolox_nano.onnx" ]; then
        cp "$ROOT/../shared/models/yolox_nano.onnx" "$MODEL.part"
    else
        url="$(sed -n 's/^upstream = "\(.*\)"/\1/p' "$ROOT/models/yolox_nano.toml")"
        say "downloading $url"
        curl -fsSL -o "$MODEL.part" "$url" || die "could not download the model from $url"
    fi
    got="$(sha256sum "$MODEL.part" | cut -d' ' -f1)"
    [ "$got" = "$WANT" ] || { rm -f "$MODEL.part"; die "models/yolox_nano.onnx has sha256 $got, expected $WANT (models/yolox_nano.toml); the download is corrupt or not the 0.1.1rc0 release"; }
    mv "$MODEL.part" "$MODEL"
fi

# 4. Sample footage ---------------------------------------------------------------
mkdir -p "$SAMPLES"
if [ ! -f "$SAMPLES/vtest.avi" ]; then
    say "extracting vtest.avi from Debian's opencv-doc"
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1) || die "apt-get download opencv-doc failed"
    dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
    src="$(find "$tmp/x" -name 'vtest.avi*' | head -n1)"
    [ -n "$src" ] || die "opencv-doc has no vtest.avi"
    case "$src" in *.gz) gunzip -c "$src" > "$SAMPLES/vtest.avi" ;; *) cp "$src" "$SAMPLES/vtest.avi" ;; esac
    rm -rf "$tmp"
fi
# encode NAME WIDTH HEIGHT FPS KEYINT BFRAMES PROFILE
encode() {
    local out="$SAMPLES/$1.mp4"
    [ -f "$out" ] && return 0
    say "encoding $1.mp4 (${2}x${3}@${4}, keyframe every $5 frames, $6 B-frames)"
    gst-launch-1.0 -q filesrc location="$SAMPLES/vtest.avi" ! decodebin ! videoconvert ! videoscale ! videorate \
        ! "video/x-raw,width=$2,height=$3,framerate=$4/1,format=I420" \
        ! x264enc key-int-max="$5" bframes="$6" b-adapt=false speed-preset=faster bitrate=$(( $2 * $3 / 400 )) \
        ! "video/x-h264,profile=$7" ! h264parse ! mp4mux faststart=true ! filesink location="$out.part" >/dev/null \
        || die "could not encode $1.mp4 with GStreamer"
    mv "$out.part" "$out"
}
encode vtest 768 576 10 20 0 constrained-baseline
encode vtest_bframes 768 576 10 20 2 high
encode vtest_1080p15 1920 1080 15 30 0 high
# H.265 goes through the same ingest/clip code path (chosen by caps); 20 s is enough to test it.
if [ ! -f "$SAMPLES/vtest_h265.mp4" ]; then
    say "encoding vtest_h265.mp4 (768x576@10, H.265, keyframe every 20 frames)"
    gst-launch-1.0 -q filesrc location="$SAMPLES/vtest.avi" ! decodebin ! videoconvert ! videoscale ! videorate \
        ! "video/x-raw,width=768,height=576,framerate=10/1,format=I420" ! identity eos-after=200 \
        ! x265enc key-int-max=20 speed-preset=faster bitrate=800 option-string="bframes=0" \
        ! h265parse ! mp4mux faststart=true ! filesink location="$SAMPLES/vtest_h265.mp4.part" >/dev/null \
        || die "could not encode vtest_h265.mp4 with GStreamer"
    mv "$SAMPLES/vtest_h265.mp4.part" "$SAMPLES/vtest_h265.mp4"
fi
exit 0
