#!/usr/bin/env bash
# Installs the kiosk from dist/pi on the Pi: /opt/gan-edge, a system user, the systemd unit.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "run as root: sudo ./install.sh" >&2; exit 1; }
install -d /opt/gan-edge/bin /opt/gan-edge/lib /opt/gan-edge/models
install -m 755 bin/edge-runtime /opt/gan-edge/bin/
install -m 644 lib/libonnxruntime.so.* /opt/gan-edge/lib/
install -m 644 models/*.onnx /opt/gan-edge/models/
id gan-edge >/dev/null 2>&1 || useradd --system --no-create-home --groups video gan-edge
install -m 644 gan-edge.service /etc/systemd/system/gan-edge.service
systemctl daemon-reload
systemctl enable --now gan-edge.service
echo "gan-edge kiosk installed and started: journalctl -u gan-edge -f"
