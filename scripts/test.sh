#!/usr/bin/env bash
# Installs the tools the tests drive (ffmpeg, browsers, ...) when missing,
# then runs the whole test suite. Under CI=true a test whose tool is missing
# fails instead of skipping, so this script must install everything.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }

install_deps() {
  # Each area of the project lists its own system test tools.
  for deps in scripts/ci-deps-*.sh; do
    [ -e "$deps" ] || continue
    echo "==> $deps"
    bash "$deps"
  done
  if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    $(need_root) apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -qq ffmpeg >/dev/null
  fi
}

if [ "${SKIP_TEST_DEPS:-}" != "1" ]; then
  install_deps
fi

cargo test --all-targets "$@"
