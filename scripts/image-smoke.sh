#!/usr/bin/env bash
# Builds the real Dockerfile for linux/amd64 and linux/arm64 with podman and
# checks the image for real: the amd64 container relays the image's own mock
# camera (reached by host name, so name resolution in the static binary is
# exercised), /stream, /snapshot and /readyz answer, SIGTERM stops it with
# exit 0; the arm64 binary runs under qemu; the image size is reported.
# No registry is reachable here, so ../shared/tools/image-standins.sh builds
# local stand-ins of the base images first (a no-op when they exist).
# Under CI=true anything missing is a failure; elsewhere missing podman skips.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { echo "image-smoke [$((SECONDS - t0))s]: $*"; }
fail() { echo "image-smoke: FAIL: $*" >&2; exit 1; }

standins=../shared/tools/image-standins.sh
if ! command -v podman >/dev/null 2>&1 || ! podman image exists gcr.io/distroless/static-debian12:nonroot 2>/dev/null; then
  if [ -x "$standins" ] || [ -f "$standins" ]; then
    say "building base-image stand-ins ($standins)"
    bash "$standins" >/tmp/image-standins.log 2>&1 || { tail -30 /tmp/image-standins.log; fail "stand-ins did not build"; }
  elif [ "${CI:-}" = "true" ]; then
    fail "podman and $standins are missing"
  else
    echo "image-smoke: SKIP (no podman, no stand-in script)"; exit 0
  fi
fi

ulimits=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
podman=(podman --runtime /usr/sbin/runc)
image=localhost/mjpeg-relay:smoke

say "building linux/amd64 + linux/arm64"
"${podman[@]}" manifest rm "$image" >/dev/null 2>&1 || true
"${podman[@]}" build --pull=never "${ulimits[@]}" \
  --build-arg BUILDPLATFORM=linux/amd64 \
  --build-arg RUST_IMAGE=rust:1-slim-trixie \
  --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot \
  --platform linux/amd64,linux/arm64 --manifest "$image" . >/tmp/image-build.log 2>&1 \
  || { tail -40 /tmp/image-build.log; fail "image build failed"; }
say "built"

digest_of() {
  "${podman[@]}" manifest inspect "$image" | python3 -c '
import json, sys
arch = sys.argv[1]
print([m["digest"] for m in json.load(sys.stdin)["manifests"] if m["platform"]["architecture"] == arch][0])' "$1"
}
amd64="$image@$(digest_of amd64)"
arm64="$image@$(digest_of arm64)"

size=$("${podman[@]}" image inspect "$amd64" --format '{{.Size}}')
say "amd64 image size: $((size / 1024 / 1024)) MiB ($size bytes)"
user=$("${podman[@]}" image inspect "$amd64" --format '{{.Config.User}}')
[ "$user" = "65532:65532" ] || fail "image runs as '$user', not 65532:65532"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cam_port=$(free_port); port=$(free_port); admin=$(free_port)
cleanup() { "${podman[@]}" rm -f smoke-camera smoke-relay >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

run=("${podman[@]}" run -d "${ulimits[@]}" --network host --read-only --cap-drop ALL --security-opt no-new-privileges)
"${run[@]}" --name smoke-camera "$amd64" mock-camera --port "$cam_port" --bind 127.0.0.1 --width 320 --height 240 >/dev/null
"${run[@]}" --name smoke-relay -e MJPEG_RELAY_PORT="$port" -e MJPEG_RELAY_ADMIN_PORT="$admin" \
  "$amd64" "http://localhost:$cam_port/stream" >/dev/null

wait_for() {
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  "${podman[@]}" logs smoke-relay 2>&1 | tail -20
  fail "$what"
}
wait_for "/readyz never answered 200" curl -fsS "http://127.0.0.1:$admin/readyz"
wait_for "/snapshot never answered 200" curl -fsS -o /dev/null "http://127.0.0.1:$port/snapshot"
ctype=$(curl -fsS -o /tmp/smoke-snapshot.jpg -w '%{content_type}' "http://127.0.0.1:$port/snapshot")
[ "$ctype" = "image/jpeg" ] || fail "/snapshot content type '$ctype'"
head -c 2 /tmp/smoke-snapshot.jpg | od -An -tx1 | grep -q 'ff d8' || fail "/snapshot is not a JPEG"
# An endless stream: read for 2 s (curl then reports a timeout, expected).
curl -s --max-time 2 "http://127.0.0.1:$port/stream" -o /tmp/smoke-stream.bin || true
grep -qa "Content-Type: image/jpeg" /tmp/smoke-stream.bin || fail "/stream carried no JPEG part"
frames=$(grep -ca "Content-Length:" /tmp/smoke-stream.bin || true)
say "/readyz 200, /snapshot image/jpeg, /stream carried $frames parts in 2 s (camera reached as localhost: name resolution works)"
"${run[@]}" --rm --name smoke-health "$amd64" healthcheck --admin-port "$admin" >/dev/null \
  || fail "healthcheck subcommand failed against a live relay"
say "healthcheck subcommand: exit 0"

"${podman[@]}" stop -t 15 smoke-relay >/dev/null
code=$("${podman[@]}" inspect smoke-relay --format '{{.State.ExitCode}}')
[ "$code" = "0" ] || { "${podman[@]}" logs smoke-relay 2>&1 | tail -20; fail "relay exited $code on SIGTERM"; }
"${podman[@]}" logs smoke-relay 2>&1 | grep -q "shut down cleanly" || fail "no clean-shutdown line in the relay's log"
say "SIGTERM: exit 0, shut down cleanly"

version=$("${podman[@]}" run --rm "${ulimits[@]}" --platform linux/arm64 "$arm64" --version 2>&1 | tail -1)
case "$version" in
  mjpeg-relay*) say "arm64 binary under qemu: $version" ;;
  *) fail "arm64 binary did not run: $version" ;;
esac
arch=$("${podman[@]}" image inspect "$arm64" --format '{{.Architecture}}')
[ "$arch" = "arm64" ] || fail "arm64 instance reports architecture '$arch'"

say "PASS (image $((size / 1024 / 1024)) MiB)"
