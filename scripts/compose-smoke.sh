#!/usr/bin/env bash
# Brings up the real docker-compose.yml (mock camera + relay, configured by
# env only) with podman-compose on the image scripts/image-smoke.sh built, and
# checks it: /snapshot is a JPEG, /stream carries parts, status says
# streaming, the healthcheck subcommand passes inside the container, the
# hardening options are applied, and `stop` ends the relay with exit 0.
# This sandbox has no container DNS (no CNI dnsname plugin), so an override
# puts both services on the host network with free ports; everything else is
# the file as users run it. Under CI=true anything missing is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { echo "compose-smoke [$((SECONDS - t0))s]: $*"; }
fail() { echo "compose-smoke: FAIL: $*" >&2; exit 1; }

image=localhost/mjpeg-relay:smoke
if ! command -v podman >/dev/null 2>&1 || ! podman image exists "$image" 2>/dev/null; then
  [ "${CI:-}" = "true" ] && fail "podman or $image is missing (run scripts/image-smoke.sh first)"
  echo "compose-smoke: SKIP (no podman or no $image)"; exit 0
fi
if ! python3 -c 'import podman_compose' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check podman-compose 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages podman-compose \
    || fail "cannot install podman-compose"
fi

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cam_port=$(free_port); port=$(free_port); admin=$(free_port)
# The runtime and limits that work in this sandbox (see image-smoke.sh).
printf '[engine]\nruntime = "runc"\n[engine.runtimes]\nrunc = ["/usr/sbin/runc"]\n' > "$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf" MJPEG_RELAY_IMAGE="$image"
cat > "$work/override.yml" <<YAML
services:
  camera:
    network_mode: host
    ulimits: {nofile: 20000, nproc: 32768}
    command: ["mock-camera", "--port", "$cam_port", "--bind", "127.0.0.1"]
  relay:
    network_mode: host
    ports: !reset []
    ulimits: {nofile: 20000, nproc: 32768}
    environment:
      MJPEG_RELAY_SOURCE: http://localhost:$cam_port/stream
      MJPEG_RELAY_PORT: "$port"
      MJPEG_RELAY_ADMIN_PORT: "$admin"
YAML
compose=(python3 -m podman_compose -p mjpeg-relay-smoke -f docker-compose.yml -f "$work/override.yml")
relay=mjpeg-relay-smoke_relay_1
down() { "${compose[@]}" down -t 5 >/dev/null 2>&1 || true; }
trap 'down; rm -rf "$work"' EXIT
down

"${compose[@]}" up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "compose up failed"; }
say "up: camera + relay"

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/snapshot" 2>/dev/null && break
  sleep 0.2
done
ctype=$(curl -fsS -o "$work/snap.jpg" -w '%{content_type}' "http://127.0.0.1:$port/snapshot") \
  || { podman logs "$relay" 2>&1 | tail -20; fail "/snapshot never answered"; }
[ "$ctype" = "image/jpeg" ] || fail "/snapshot content type '$ctype'"
head -c 2 "$work/snap.jpg" | od -An -tx1 | grep -q 'ff d8' || fail "/snapshot is not a JPEG"
curl -s --max-time 2 "http://127.0.0.1:$port/stream" -o "$work/stream.bin" || true
parts=$(grep -ca -- "--mjpegrelayboundary" "$work/stream.bin" || true)
[ "$parts" -gt 10 ] || fail "/stream carried $parts parts in 2 s"
state=$(curl -fsS "http://127.0.0.1:$port/status.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["source"]["state"])')
[ "$state" = "streaming" ] || fail "status says '$state'"
say "/snapshot image/jpeg, /stream $parts parts in 2 s, status streaming"

podman exec "$relay" /mjpeg-relay healthcheck --admin-port "$admin" >/dev/null || fail "healthcheck failed in the container"
hardening=$(podman inspect "$relay" --format '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.SecurityOpt}} {{len .HostConfig.CapDrop}}')
case "$hardening" in
  "true [no-new-privileges] "*) ;;
  *) fail "hardening not applied: $hardening" ;;
esac
[ "${hardening##* }" -ge 10 ] || fail "capabilities not dropped: $hardening"
say "healthcheck exit 0; read-only, no-new-privileges, all capabilities dropped"

"${compose[@]}" stop >"$work/stop.log" 2>&1 || { cat "$work/stop.log"; fail "compose stop failed"; }
code=$(podman inspect "$relay" --format '{{.State.ExitCode}}')
[ "$code" = "0" ] || { podman logs "$relay" 2>&1 | tail -20; fail "relay exited $code on stop"; }
podman logs "$relay" 2>&1 | grep -q "shut down cleanly" || fail "no clean-shutdown line in the relay's log"
say "stop: exit 0, shut down cleanly"
say "PASS"
