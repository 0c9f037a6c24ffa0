#!/usr/bin/env bash
# System tools the viewer interop tests (tests/interop.rs) drive: ffmpeg/ffprobe,
# GStreamer, Chromium + chromedriver, Python with requests and selenium.
# Idempotent and non-interactive; run as root (CI) before `cargo test`.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v gst-launch-1.0 >/dev/null 2>&1 || need_apt+=(gstreamer1.0-tools)
# Keep the plugin sets even if gst-launch is already there: souphttpsrc lives
# in -good, jpegdec in -good, multipartdemux in -good, fakesink in core.
dpkg -s gstreamer1.0-plugins-good >/dev/null 2>&1 || need_apt+=(gstreamer1.0-plugins-good)
dpkg -s gstreamer1.0-plugins-base >/dev/null 2>&1 || need_apt+=(gstreamer1.0-plugins-base)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)

if ((${#need_apt[@]})); then
    apt-get update
    apt-get install -y --no-install-recommends "${need_apt[@]}"
fi

py_missing=()
python3 -c 'import requests' 2>/dev/null || py_missing+=(requests)
python3 -c 'import selenium' 2>/dev/null || py_missing+=(selenium)
if ((${#py_missing[@]})); then
    python3 -m pip install --quiet "${py_missing[@]}" \
        || python3 -m pip install --quiet --break-system-packages "${py_missing[@]}"
fi
