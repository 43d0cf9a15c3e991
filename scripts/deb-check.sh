#!/usr/bin/env bash
# Installs the freshly built packages on this machine and checks them the way a field
# tech would: apt installs them with their dependencies, the units pass
# `systemd-analyze verify`, the binaries run, and `vigil-agent doctor` works against a
# sample camera. Needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
agent_deb=$(ls -1t target/debian/vigil-agent_*.deb | head -1)
hub_deb=$(ls -1t target/debian/vigil-hub_*.deb | head -1)
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$agent_deb" "./$hub_deb" >/dev/null
for unit in vigil-agent vigil-hub; do
    path=/usr/lib/systemd/system/$unit.service
    [ -f "$path" ] || { echo "deb-check: $path not installed" >&2; exit 1; }
    systemd-analyze verify "$path"
    systemd-analyze security --offline=yes "$path" | tail -1
done
getent passwd vigil >/dev/null || { echo "deb-check: user vigil not created" >&2; exit 1; }
[ -f /etc/vigil/agent.toml ] && [ -f /etc/vigil/hub.toml ] || { echo "deb-check: /etc/vigil configs missing" >&2; exit 1; }
/usr/bin/vigil-agent --version
/usr/bin/vigil-hub --version
/usr/bin/vigil-verify --version
# A field tech's first run: doctor against a sample camera with the packaged runtime,
# model and a fresh key (no broker configured, so no uplink check).
work="$(mktemp -d)"
trap 'kill "$cam" 2>/dev/null || true; rm -rf "$work"' EXIT
/usr/bin/vigil-agent camsim --file target/samples/vtest.mp4 --port 0 --path /cam1 > "$work/camsim.out" 2>/dev/null &
cam=$!
for _ in $(seq 100); do grep -q serving "$work/camsim.out" 2>/dev/null && break; sleep 0.1; done
url="$(awk '/serving/ {print $3}' "$work/camsim.out")"
/usr/bin/vigil-agent keygen --key "$work/agent.key" >/dev/null
cat > "$work/agent.toml" <<TOML
agent_id = "deb-check"
key = "$work/agent.key"
chain_dir = "$work/chain"
outbox_dir = "$work/outbox"
[detect]
model = "/usr/share/vigil/models/yolox_nano.toml"
runtime_library = "/usr/lib/vigil/libonnxruntime.so.1.31.1"
[[cameras]]
id = "cam1"
url = "$url"
TOML
env -u ORT_DYLIB_PATH /usr/bin/vigil-agent doctor --config "$work/agent.toml"
echo "deb-check: OK"
