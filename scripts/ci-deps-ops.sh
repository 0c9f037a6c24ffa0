#!/usr/bin/env bash
# Tools the operations tests drive: Python's prometheus_client (a real
# OpenMetrics parser for /metrics). Idempotent.
set -euo pipefail
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  python3 -m pip install --quiet prometheus-client \
    || python3 -m pip install --quiet --break-system-packages prometheus-client
fi
