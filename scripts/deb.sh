#!/usr/bin/env bash
# Builds the Debian packages (cargo-deb) into target/debian/.
# Needs `make setup` first (ONNX Runtime library and model are packaged with the agent).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.6.2
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "deb: installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
for f in .deps/onnxruntime/libonnxruntime.so.1.31.1 models/yolox_nano.onnx; do
    [ -e "$f" ] || { echo "deb: $f is missing; run make setup" >&2; exit 1; }
done
cargo build --release --bins
for crate in vigil-agent vigil-hub; do
    cargo deb --no-build -p "$crate" --output target/debian/ >/dev/null
done
ls -1 target/debian/*.deb
